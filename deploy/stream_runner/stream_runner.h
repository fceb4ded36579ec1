// keras-iusp streaming runner: 16-bit PCM -> log-mel front end -> ring of int8 frames ->
// TFLite-Micro model every half window -> per-class running maximum (the clip score).
//
// It does on the device exactly what `keras-iusp evaluate` does on a .tflite window model:
// windows of kNumFrames frames starting every kWindowHopFrames frames (plus, at the end of a
// clip, one window aligned with the clip's end), each window scored from a cleared LSTM state,
// and the clip score of a class is the maximum of its window logits.
//
// Needs the generated model_settings.h, frontend.h and a TFLM MicroInterpreter built by the
// application (see main.cc). No heap, no exceptions.

#ifndef KERAS_IUSP_STREAM_RUNNER_H_
#define KERAS_IUSP_STREAM_RUNNER_H_

#include <stdint.h>

#include "frontend.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

namespace keras_iusp {

// Half a window, as the windowed AUPRC of the export and `evaluate` use.
constexpr int kWindowHopFrames = kNumFrames / 2 > 0 ? kNumFrames / 2 : 1;
// RAM the runner keeps beside the tensor arena (the front end and the frame ring dominate).
constexpr int kFrameRingBytes = kNumFrames * kNumMelBins;

class StreamRunner {
 public:
  // The interpreter must have allocated its tensors (int8 input [1, kNumFrames, kNumMelBins]).
  explicit StreamRunner(tflite::MicroInterpreter* interpreter);

  // Starts a new stream or clip: clears the front end, the frame ring and the running maximum.
  void Begin();

  // Feeds kHopSamples samples; runs the model when a window is due. `invoked` (optional) tells
  // whether it ran.
  TfLiteStatus PushAudio(const int16_t* hop, bool* invoked);

  // Feeds one already quantised frame (kNumMelBins int8 values) instead of audio.
  TfLiteStatus PushFrame(const int8_t* row, bool* invoked);

  // End of a finite clip: scores the window that ends on the last frame if the half-window
  // schedule has not (as `evaluate` does), so a clip gets the same windows on both sides.
  TfLiteStatus Finish();

  // int8 output logits of the last window scored (kNumClasses values; the detector's input).
  const int8_t* window_logits() const { return window_logits_; }
  // Running maximum of each class's int8 output logit since Begin(); -128 before any window.
  const int8_t* max_logits() const { return max_logits_; }
  // sigmoid(kOutputScale * (max_logit - kOutputZeroPoint)).
  float Probability(int class_index) const;
  int frames() const { return frames_; }
  int windows() const { return windows_; }

 private:
  TfLiteStatus RunWindow();

  tflite::MicroInterpreter* interpreter_;
  FrontendState frontend_;
  int8_t ring_[kNumFrames][kNumMelBins];  // the last kNumFrames frames, circular
  float log_mel_[kNumMelBins];
  int8_t max_logits_[kNumClasses];
  int8_t window_logits_[kNumClasses];
  int next_row_;       // ring row the next frame goes to
  int frames_;         // frames since Begin()
  int last_window_end_;  // frame count at the last invoke (-1: none)
  int windows_;
};

}  // namespace keras_iusp

#endif  // KERAS_IUSP_STREAM_RUNNER_H_
