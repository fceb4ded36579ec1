// keras-iusp block streaming runner: 16-bit PCM -> log-mel front end -> blocks of kBlockFrames
// int8 frames -> the streaming model (stream_settings.h) with its state tensors carried from
// invoke to invoke -> per-class running mean and maximum of the frame logits, and events:
// windows of kWindowOutputs output frames every kWindowHopOutputs (stream_settings.h), each
// scored by its rounded mean int8 frame logit, go through the event detector (detector.h).
//
// Every frame goes through the network once; the convolution context, delay lines and the
// LSTM's h/c are explicit model inputs/outputs (CMSIS-NN's LSTM kernel keeps no state), so the
// runner owns them: after each invoke it reads every state output (requantising where the
// output and input scales differ), applies the warm-up resets and writes them back as inputs.
// Needs the generated frontend.h (window export) and stream_settings.h / stream_model_data.h
// (export --streaming). No heap, no exceptions. Python reference: keras_iusp.export.streaming
// .run_stream with keras_iusp.export.streaming_export.tflm_invoke; window scores and events:
// keras_iusp.export.stream_detector.window_scores and keras_iusp.detect.detect_events.

#ifndef KERAS_IUSP_BLOCK_RUNNER_H_
#define KERAS_IUSP_BLOCK_RUNNER_H_

#include <stdint.h>

#include "detector.h"
#include "frontend.h"
#include "model_settings.h"
#include "stream_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

namespace keras_iusp {

constexpr int StreamStateElements() {
  int total = 0;
  for (int s = 0; s < keras_iusp_stream::kNumStates; ++s) {
    total += keras_iusp_stream::kStates[s].elements;
  }
  return total;
}
// RAM the runner keeps beside the arena: one block of int8 frames and every state tensor.
constexpr int kBlockBytes = keras_iusp_stream::kBlockFrames * kNumMelBins;
constexpr int kStateBytes = StreamStateElements();
// The detector's window of output frames (int8 frame logits of the last kWindowOutputs frames).
constexpr int kWindowRingBytes = keras_iusp_stream::kWindowOutputs * kNumClasses;

static_assert(sizeof(keras_iusp_stream::kDetectorOnThreshold) / sizeof(int) == kNumClasses &&
                  sizeof(keras_iusp_stream::kDetectorOffThreshold) / sizeof(int) == kNumClasses &&
                  sizeof(keras_iusp_stream::kDetectorHoldOffWindows) / sizeof(int) == kNumClasses,
              "stream_settings.h detector is not for kNumClasses classes");
static_assert(keras_iusp_stream::kWindowOutputs >= 1 && keras_iusp_stream::kWindowHopOutputs >= 1,
              "stream_settings.h window layout out of range");
static_assert(keras_iusp_stream::kDetectorSmoothingWindows >= 1 &&
                  keras_iusp_stream::kDetectorSmoothingWindows <= kDetectorMaxSmoothingWindows,
              "stream_settings.h kDetectorSmoothingWindows out of range");

// The detector settings calibrated for the stream (stream_settings.h).
DetectorSettings StreamDetectorSettings();

// What the application hears from the runner (override what it needs; all calls come from
// inside PushAudio()/PushFrame()/FinishEvents()).
class StreamListener {
 public:
  // Window `window` (counted from Begin()) was scored: kNumClasses int8 scores.
  virtual void OnWindow(int32_t /*window*/, const int8_t* /*scores*/) {}
  // An event of class_index began (kDetectorOnset at window onset_window; offset_window is -1)
  // or ended (kDetectorOffset: windows onset_window .. offset_window - 1 were active).
  virtual void OnEvent(int /*class_index*/, DetectorChange /*change*/, int32_t /*onset_window*/,
                       int32_t /*offset_window*/) {}

 protected:
  ~StreamListener() = default;
};

class BlockRunner {
 public:
  // The interpreter must have allocated its tensors for g_stream_model_data (its logits have
  // kNumClasses of model_settings.h per output frame; main.cc checks it).
  explicit BlockRunner(tflite::MicroInterpreter* interpreter,
                       const DetectorSettings& detector = StreamDetectorSettings());

  // Starts a new stream: front end cleared, every state at zero, scores, windows and events
  // cleared.
  void Begin();

  // Who hears windows and events (null: nobody); kept across Begin().
  void SetListener(StreamListener* listener) { listener_ = listener; }
  // End of a finite stream: ends every open event (callback with kDetectorOffset).
  void FinishEvents();

  // Feeds kHopSamples samples; invokes the model when a block of frames is complete.
  TfLiteStatus PushAudio(const int16_t* hop, bool* invoked);
  // Feeds one log-mel frame (kNumMelBins values, before quantisation).
  TfLiteStatus PushFrame(const float* log_mel, bool* invoked);

  // int8 frame logits of the last block ([kOutputFrames][classes]); the first
  // first_new_output() rows of it still belong to the warm-up (before the stream started).
  const int8_t* block_logits() const { return block_logits_; }
  int first_new_output() const { return first_new_output_; }
  // Running per-class maximum of the int8 frame logits since Begin() (-128 before any).
  const int8_t* max_logits() const { return max_logits_; }
  // Running mean of the dequantised frame logits of class c (the clip logit).
  float MeanLogit(int c) const;
  // Counters since Begin(); 64-bit (or, for blocks, saturating) so that an always-on stream
  // never overflows them.
  int64_t frames() const { return frames_; }
  int32_t blocks() const { return blocks_; }
  int64_t output_frames() const { return outputs_; }
  // int8 scores of the last window (kNumClasses values) and the windows scored since Begin().
  const int8_t* window_scores() const { return window_scores_; }
  int windows() const { return static_cast<int>(detector_.windows()); }

 private:
  TfLiteStatus RunBlock();
  void PushOutputFrame(const int8_t* logits);
  void Report(const uint8_t* changes);

  tflite::MicroInterpreter* interpreter_;
  FrontendState frontend_;
  float log_mel_[kNumMelBins];
  int8_t block_[kBlockBytes];
  int8_t state_[kStateBytes > 0 ? kStateBytes : 1];
  int8_t block_logits_[keras_iusp_stream::kOutputFrames * kNumClasses];
  int8_t max_logits_[kNumClasses];
  int64_t sum_steps_[kNumClasses];  // sum of (q - zero point) of the frames counted
  int row_;      // frames in block_
  int64_t frames_;   // frames since Begin()
  int32_t blocks_;   // invokes since Begin(), saturating at INT32_MAX
  int64_t outputs_;  // output frames counted (warm-up excluded)
  int warmup_left_;  // warm-up output frames still to drop
  int window_countdown_;  // output frames until the next window ends
  int first_new_output_;
  // the last kWindowOutputs output frames, circular, and their per-class sums of (q - zp)
  int8_t window_ring_[keras_iusp_stream::kWindowOutputs][kNumClasses];
  int32_t window_sum_[kNumClasses];
  int8_t window_scores_[kNumClasses];
  int window_next_;
  Detector detector_;
  StreamListener* listener_;
};

}  // namespace keras_iusp

#endif  // KERAS_IUSP_BLOCK_RUNNER_H_
