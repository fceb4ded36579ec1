// Bare-metal skeleton of the on-device loop (what benchmarks/firmware_size.py links for a
// Cortex-M4 to measure the whole image): the audio driver fills g_audio_hop with kHopSamples of
// 16-bit PCM and sets g_hop_ready (from its DMA interrupt); the main loop streams each hop
// through the front end and the model and publishes the per-class clip probabilities.

#include <stdint.h>

#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "stream_runner.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
constexpr int kArenaHeadroom = 1024;  // CMSIS-NN scratch beyond the host-measured arena
alignas(16) uint8_t g_arena[keras_iusp::kTensorArenaSize + kArenaHeadroom];
}  // namespace

// Written by the audio driver (DMA half/full-transfer interrupt), read by the main loop.
volatile int16_t g_audio_hop[keras_iusp::kHopSamples];
volatile bool g_hop_ready = false;
// Read by the application: clip probabilities since the last Begin().
volatile float g_scores[keras_iusp::kNumClasses];

int main() {
  tflite::InitializeTarget();
  static keras_iusp::OpResolver resolver;
  if (keras_iusp::RegisterOps(resolver) != kTfLiteOk) return 1;
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), resolver, g_arena,
                                              sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  static keras_iusp::StreamRunner runner(&interpreter);
  int16_t hop[keras_iusp::kHopSamples];
  for (;;) {
    while (!g_hop_ready) {
    }
    for (int i = 0; i < keras_iusp::kHopSamples; ++i) hop[i] = g_audio_hop[i];
    g_hop_ready = false;
    bool invoked = false;
    if (runner.PushAudio(hop, &invoked) != kTfLiteOk) return 1;
    if (invoked) {
      for (int c = 0; c < keras_iusp::kNumClasses; ++c) g_scores[c] = runner.Probability(c);
    }
  }
}
