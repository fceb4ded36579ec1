// Host (or device) driver of the streaming runner: reads raw 16-bit little-endian mono PCM at
// kSampleRate from a file, cuts it into clips of a given length, streams every clip through
// the front end and the model, and prints each clip's per-class maximum int8 logit and
// probability, then the mean time per model invoke. Every half-window schedule window's int8
// outputs also go through the always-on detector (detector.h, calibrated settings of
// model_settings.h); it prints "window CLIP W logits ..." for each such window and
// "event CLIP CLASS ONSET_WINDOW OFFSET_WINDOW ONSET_S OFFSET_S" when an event ends (open
// events end with the clip). Give the whole file as one clip to run it as a continuous stream.
//
//   stream_runner PCM_FILE SAMPLES_PER_CLIP
//
// On a microcontroller, keep the setup below and call runner.PushAudio() from the audio DMA
// callback (one hop of kHopSamples at a time); read runner.Probability() whenever needed, and
// pass runner.window_logits() to Detector::Push() after each invoke for events.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <chrono>

#include "arena_size.h"
#include "detector.h"
#include "frontend.h"
#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "stream_runner.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// kTensorArenaSize + headroom, or the arena measured on the target (arena_size.h)
alignas(16) uint8_t g_arena[keras_iusp::kArenaBytes];

// Hop-long stretch of audio centred on window w of a clip (consecutive windows tile it), as
// keras_iusp.detect.WindowTiming.tile: event onset = tile start of its onset window, offset =
// tile end of its last window.
double TileStartSeconds(int window) {
  const double frame_hop = static_cast<double>(keras_iusp::kHopSamples) / keras_iusp::kSampleRate;
  const double frame = static_cast<double>(keras_iusp::kWindowSamples) / keras_iusp::kSampleRate;
  const double hop = keras_iusp::kWindowHopFrames * frame_hop;
  return window * hop + ((keras_iusp::kNumFrames - 1) * frame_hop + frame) / 2 - hop / 2;
}

void PrintEvents(int clip, const keras_iusp::Detector& detector, const uint8_t* changes) {
  const double hop = keras_iusp::kWindowHopFrames * static_cast<double>(keras_iusp::kHopSamples) /
                     keras_iusp::kSampleRate;
  for (int c = 0; c < keras_iusp::kNumClasses; ++c) {
    if (changes[c] != keras_iusp::kDetectorOffset) continue;
    const int onset = detector.onset_window(c), offset = detector.offset_window(c);
    printf("event %d %d %d %d %.3f %.3f\n", clip, c, onset, offset, TileStartSeconds(onset),
           TileStartSeconds(offset - 1) + hop);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PCM_FILE SAMPLES_PER_CLIP\n", argv[0]);
    return 2;
  }
  const long clip_samples = atol(argv[2]);
  if (clip_samples <= 0 || clip_samples % keras_iusp::kHopSamples != 0) {
    fprintf(stderr, "SAMPLES_PER_CLIP must be a positive multiple of %d\n",
            keras_iusp::kHopSamples);
    return 2;
  }
  FILE* file = fopen(argv[1], "rb");
  if (file == nullptr) {
    fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  tflite::InitializeTarget();
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    fprintf(stderr, "model schema %u != %d\n", static_cast<unsigned>(model->version()),
            TFLITE_SCHEMA_VERSION);
    return 2;
  }
  static keras_iusp::OpResolver resolver;
  if (keras_iusp::RegisterOps(resolver) != kTfLiteOk) return 2;
  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    fprintf(stderr, "AllocateTensors failed\n");
    return 2;
  }
  TfLiteTensor* input = interpreter.input(0);
  if (input->type != kTfLiteInt8 || input->bytes != static_cast<size_t>(keras_iusp::kInputSize)) {
    fprintf(stderr, "unexpected input tensor\n");
    return 2;
  }
  static keras_iusp::StreamRunner runner(&interpreter);
  static keras_iusp::Detector detector;
  uint8_t changes[keras_iusp::kNumClasses];
  printf("ram frontend_state %u frame_ring %u arena %u arena_used %u\n",
         static_cast<unsigned>(sizeof(keras_iusp::FrontendState)),
         static_cast<unsigned>(keras_iusp::kFrameRingBytes),
         static_cast<unsigned>(keras_iusp::kTensorArenaSize),
         static_cast<unsigned>(interpreter.arena_used_bytes()));

  int16_t hop[keras_iusp::kHopSamples];
  double invoke_seconds = 0.0;
  long invokes = 0;
  for (int clip = 0;; ++clip) {
    runner.Begin();
    detector.Reset();
    long got = 0;
    for (; got < clip_samples; got += keras_iusp::kHopSamples) {
      if (fread(hop, sizeof(int16_t), keras_iusp::kHopSamples, file) !=
          static_cast<size_t>(keras_iusp::kHopSamples)) {
        break;
      }
      bool invoked = false;
      const auto start = std::chrono::steady_clock::now();
      if (runner.PushAudio(hop, &invoked) != kTfLiteOk) {
        fprintf(stderr, "invoke failed\n");
        return 1;
      }
      if (invoked) {
        invoke_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++invokes;
        printf("window %d %d logits", clip, static_cast<int>(detector.windows()));
        for (int c = 0; c < keras_iusp::kNumClasses; ++c) {
          printf(" %d", runner.window_logits()[c]);
        }
        printf("\n");
        if (detector.Push(runner.window_logits(), changes) > 0) {
          PrintEvents(clip, detector, changes);
        }
      }
    }
    if (got == 0) break;
    if (got != clip_samples) {
      fprintf(stderr, "clip %d: file ends inside the clip\n", clip);
      return 2;
    }
    if (runner.frames() < keras_iusp::kNumFrames) {
      // no window fits: refuse, as `keras-iusp evaluate` does, rather than report -128 logits
      fprintf(stderr, "clip %d: %d frames, shorter than the model's window of %d frames\n", clip,
              runner.frames(), keras_iusp::kNumFrames);
      return 2;
    }
    // The end-aligned window of a finite clip counts for the clip score, not for the detector
    // (it is off the stream's half-window schedule).
    if (runner.Finish() != kTfLiteOk) return 1;
    detector.Flush(changes);
    PrintEvents(clip, detector, changes);
    printf("clip %d frames %d windows %d logits", clip, runner.frames(), runner.windows());
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) printf(" %d", runner.max_logits()[c]);
    printf(" probs");
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) printf(" %.4f", runner.Probability(c));
    printf("\n");
  }
  fclose(file);
  printf("us_per_window %.1f over %ld windows\n", invokes ? 1e6 * invoke_seconds / invokes : 0.0,
         invokes);
  return 0;
}
