// Host (or emulated Cortex-M4) driver of the block streaming runner: reads raw 16-bit
// little-endian mono PCM at kSampleRate from a file, cuts it into clips of a given length and
// streams every clip (from zero state) through the front end and the streaming model, block by
// block. Prints the RAM it holds (the parts, and sizeof the whole runner), "frame CLIP INDEX
// logits ..." for every scored output frame (int8), and per clip "clip CLIP frames F blocks B
// outputs O windows W max ... mean ..." (the running per-class maximum int8 frame logit and the
// mean dequantised frame logit, the clip logit).
// The event detector runs on every clip (restarted with it): "window CLIP INDEX scores ..." for
// every window scored (int8), "onset CLIP CLASS WINDOW" when an event begins and "event CLIP
// CLASS ONSET_WINDOW OFFSET_WINDOW" when it ends (open events end with the clip). Give the
// whole file as one clip to run it as one continuous stream. Without SETTINGS_FILE the
// detector uses the calibrated settings of stream_settings.h; with one, the settings in it
// (format: detector_settings_file.h).
// Built with -DKERAS_IUSP_COUNT_INSTRUCTIONS for the emulated Cortex-M4 (QEMU mps2-an386 under
// -icount shift=0, deploy/targets/mps2_an386/instruction_counter.h), it also prints
// "calibration loop_instructions N ticks T" and "pushaudio hops H ticks T" (SysTick ticks spent
// in every PushAudio() call: front end and model, per hop of audio).
//
//   block_runner PCM_FILE SAMPLES_PER_CLIP [SETTINGS_FILE]
//
// On a microcontroller keep the setup below, give the runner a StreamListener whose OnEvent()
// acts on detections, and call runner.PushAudio() once per hop of kHopSamples from the audio
// driver.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "block_runner.h"
#include "detector_settings_file.h"
#include "frontend.h"
#include "model_settings.h"
#include "stream_model_data.h"
#include "stream_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"
#ifdef KERAS_IUSP_COUNT_INSTRUCTIONS
#include "instruction_counter.h"
#endif

namespace ks = keras_iusp_stream;

namespace {
// CMSIS-NN kernels may need a little more scratch than the host build the export measured.
constexpr int kArenaHeadroom = 1024;
alignas(16) uint8_t g_arena[ks::kTensorArenaSize + kArenaHeadroom];

// Prints every window and event of the clip being streamed.
class Printer final : public keras_iusp::StreamListener {
 public:
  int clip = 0;
  void OnWindow(int32_t window, const int8_t* scores) override {
    printf("window %d %d scores", clip, static_cast<int>(window));
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) printf(" %d", scores[c]);
    printf("\n");
  }
  void OnEvent(int class_index, keras_iusp::DetectorChange change, int32_t onset_window,
               int32_t offset_window) override {
    if (change == keras_iusp::kDetectorOnset) {
      printf("onset %d %d %d\n", clip, class_index, static_cast<int>(onset_window));
    } else {
      printf("event %d %d %d %d\n", clip, class_index, static_cast<int>(onset_window),
             static_cast<int>(offset_window));
    }
  }
};
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s PCM_FILE SAMPLES_PER_CLIP [SETTINGS_FILE]\n", argv[0]);
    return 2;
  }
  keras_iusp::DetectorSettings settings = keras_iusp::StreamDetectorSettings();
  if (argc == 4 && !keras_iusp::ReadDetectorSettings(argv[3], &settings)) {
    fprintf(stderr, "%s: cannot read detector settings\n", argv[3]);
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
  const tflite::Model* model = tflite::GetModel(g_stream_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    fprintf(stderr, "model schema %u != %d\n", static_cast<unsigned>(model->version()),
            TFLITE_SCHEMA_VERSION);
    return 2;
  }
  static ks::OpResolver resolver;
  if (ks::RegisterOps(resolver) != kTfLiteOk) return 2;
  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    fprintf(stderr, "AllocateTensors failed\n");
    return 2;
  }
  const TfLiteTensor* block = interpreter.input(ks::kBlockInputIndex);
  const TfLiteTensor* logits = interpreter.output(ks::kLogitsOutputIndex);
  if (block->type != kTfLiteInt8 || block->bytes != static_cast<size_t>(keras_iusp::kBlockBytes) ||
      logits->bytes != static_cast<size_t>(ks::kOutputFrames * keras_iusp::kNumClasses)) {
    fprintf(stderr, "stream model does not match stream_settings.h / model_settings.h\n");
    return 2;
  }
  static keras_iusp::BlockRunner runner(&interpreter, settings);
  static Printer printer;
  runner.SetListener(&printer);
  printf("ram frontend_state %u block %u state %u window_ring %u detector %u arena %u "
         "arena_used %u runner %u\n",
         static_cast<unsigned>(sizeof(keras_iusp::FrontendState)),
         static_cast<unsigned>(keras_iusp::kBlockBytes),
         static_cast<unsigned>(keras_iusp::kStateBytes),
         static_cast<unsigned>(keras_iusp::kWindowRingBytes),
         static_cast<unsigned>(sizeof(keras_iusp::Detector)),
         static_cast<unsigned>(ks::kTensorArenaSize),
         static_cast<unsigned>(interpreter.arena_used_bytes()),
         static_cast<unsigned>(sizeof(keras_iusp::BlockRunner)));

#ifdef KERAS_IUSP_COUNT_INSTRUCTIONS
  keras_iusp::StartTickCounter();
  uint32_t loop = 1000000;  // exactly 2 instructions per iteration (subs + bne)
  const uint64_t loop_start = keras_iusp::ReadTicks();
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(loop) : : "cc");
  printf("calibration loop_instructions 2000000 ticks %llu\n",
         static_cast<unsigned long long>(keras_iusp::ReadTicks() - loop_start));
#endif
  uint64_t push_ticks = 0;
  long hops = 0;
  int16_t hop[keras_iusp::kHopSamples];
  for (int clip = 0;; ++clip) {
    printer.clip = clip;
    runner.Begin();
    long got = 0;
    int frame = 0;
    for (; got < clip_samples; got += keras_iusp::kHopSamples) {
      if (fread(hop, sizeof(int16_t), keras_iusp::kHopSamples, file) !=
          static_cast<size_t>(keras_iusp::kHopSamples)) {
        break;
      }
      bool invoked = false;
#ifdef KERAS_IUSP_COUNT_INSTRUCTIONS
      const uint64_t start = keras_iusp::ReadTicks();
#endif
      const TfLiteStatus status = runner.PushAudio(hop, &invoked);
#ifdef KERAS_IUSP_COUNT_INSTRUCTIONS
      push_ticks += keras_iusp::ReadTicks() - start;
#endif
      ++hops;
      if (status != kTfLiteOk) {
        fprintf(stderr, "invoke failed\n");
        return 1;
      }
      if (!invoked) continue;
      for (int f = runner.first_new_output(); f < ks::kOutputFrames; ++f, ++frame) {
        printf("frame %d %d logits", clip, frame);
        for (int c = 0; c < keras_iusp::kNumClasses; ++c) {
          printf(" %d", runner.block_logits()[f * keras_iusp::kNumClasses + c]);
        }
        printf("\n");
      }
    }
    if (got == 0) break;
    if (got != clip_samples) {
      fprintf(stderr, "clip %d: file ends inside the clip\n", clip);
      return 2;
    }
    if (runner.output_frames() == 0) {
      fprintf(stderr, "clip %d: %lld frames, too short for one scored output frame\n", clip,
              static_cast<long long>(runner.frames()));
      return 2;
    }
    runner.FinishEvents();
    printf("clip %d frames %lld blocks %d outputs %lld windows %d max", clip,
           static_cast<long long>(runner.frames()), static_cast<int>(runner.blocks()),
           static_cast<long long>(runner.output_frames()), runner.windows());
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) printf(" %d", runner.max_logits()[c]);
    printf(" mean");
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) printf(" %.6f", runner.MeanLogit(c));
    printf("\n");
  }
  fclose(file);
  printf("pushaudio hops %ld ticks %llu\n", hops, static_cast<unsigned long long>(push_ticks));
  printf("done\n");
  return 0;
}
