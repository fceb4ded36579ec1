// Bare-metal skeleton of the on-device loop (what benchmarks/firmware_size.py links for a
// Cortex-M4 to measure the whole image): the audio driver fills g_audio_hop with kHopSamples of
// 16-bit PCM and sets g_hop_ready (from its DMA interrupt); the main loop streams each hop
// through the front end and the model, publishes the per-class clip probabilities, and feeds
// every window's int8 outputs to the always-on detector (detector.h, the calibrated settings of
// model_settings.h), whose finished events (class, onset window, offset window) it appends to
// g_events. The same loop with PCM read from a file and events printed is main.cc, which the
// tests run on the emulated Cortex-M4F and on the host.

#include <stdint.h>

#include "arena_size.h"
#include "detector.h"
#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "stream_runner.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
alignas(16) uint8_t g_arena[keras_iusp::kArenaBytes];
}  // namespace

// One finished event, in windows counted since start-up (one window every kNumFrames / 2
// frames).
struct DeviceEvent {
  int32_t class_index;
  int32_t onset_window;
  int32_t offset_window;
};
constexpr int kEventSlots = 16;

// Written by the audio driver (DMA half/full-transfer interrupt), read by the main loop.
volatile int16_t g_audio_hop[keras_iusp::kHopSamples];
volatile bool g_hop_ready = false;
// Read by the application: clip probabilities since the last Begin().
volatile float g_scores[keras_iusp::kNumClasses];
// Read by the application: event n is g_events[n % kEventSlots] for n < g_event_count (the
// application reads them before kEventSlots more arrive).
volatile DeviceEvent g_events[kEventSlots];
volatile uint32_t g_event_count = 0;

int main() {
  tflite::InitializeTarget();
  static keras_iusp::OpResolver resolver;
  if (keras_iusp::RegisterOps(resolver) != kTfLiteOk) return 1;
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), resolver, g_arena,
                                              sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  static keras_iusp::StreamRunner runner(&interpreter);
  static keras_iusp::Detector detector;
  uint8_t changes[keras_iusp::kNumClasses];
  int16_t hop[keras_iusp::kHopSamples];
  for (;;) {
    while (!g_hop_ready) {
    }
    for (int i = 0; i < keras_iusp::kHopSamples; ++i) hop[i] = g_audio_hop[i];
    g_hop_ready = false;
    bool invoked = false;
    if (runner.PushAudio(hop, &invoked) != kTfLiteOk) return 1;
    if (!invoked) continue;
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) g_scores[c] = runner.Probability(c);
    if (detector.Push(runner.window_logits(), changes) == 0) continue;
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) {
      if (changes[c] != keras_iusp::kDetectorOffset) continue;
      volatile DeviceEvent& slot = g_events[g_event_count % kEventSlots];
      slot.class_index = c;
      slot.onset_window = detector.onset_window(c);
      slot.offset_window = detector.offset_window(c);
      g_event_count = g_event_count + 1;
    }
  }
}
