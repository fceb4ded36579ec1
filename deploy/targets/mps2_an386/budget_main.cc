// Instruction budget of the on-device loop, counted on the emulated Cortex-M4F (QEMU mps2-an386
// with `-icount shift=0`, see instruction_counter.h): the streaming runner of
// deploy/stream_runner fed a deterministic test signal (a tone over pseudo-random noise,
// generated here, no file needed), with the SysTick count read around every PushAudio() call
// and around bare Invoke() calls on the last window.
//
// Prints (all counts are SysTick ticks; multiply by the calibrated instructions per tick):
//   calibration loop_instructions N ticks T      a loop of exactly N instructions
//   invoke ticks T count K                        Invoke() alone, K calls
//   frontend_hop ticks T count K                  PushAudio() calls that ran no model
//   stream hops H windows W ticks T               every PushAudio() call after the ring filled
// and ends with "budget done". No heap, no file I/O beyond printf over semihosting.

#include <stdint.h>
#include <stdio.h>

#include "arena_size.h"
#include "instruction_counter.h"
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

// Window hops streamed after the frame ring is full (the steady state measured).
constexpr int kMeasuredWindowHops = 4;
constexpr int kBareInvokes = 3;
constexpr uint32_t kLoopIterations = 1000000;

uint32_t g_noise = 12345u;

// One hop of the test signal: a 1 kHz tone at -12 dBFS plus uniform noise at about -30 dBFS.
void FillHop(int16_t* hop, long first_sample) {
  for (int i = 0; i < keras_iusp::kHopSamples; ++i) {
    const long n = first_sample + i;
    // 16 samples per period at 16 kHz: a table-free triangle approximation keeps it exact.
    const int phase = static_cast<int>(n % 16);
    const int tri = phase < 8 ? phase * 2 - 8 : 24 - phase * 2;  // -8..8
    g_noise = g_noise * 1664525u + 1013904223u;
    const int noise = static_cast<int>(g_noise >> 22) - 512;  // -512..511
    hop[i] = static_cast<int16_t>(tri * 1024 + noise);
  }
}

}  // namespace

int main() {
  tflite::InitializeTarget();
  static keras_iusp::OpResolver resolver;
  if (keras_iusp::RegisterOps(resolver) != kTfLiteOk) return 2;
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), resolver, g_arena,
                                              sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    printf("AllocateTensors failed\n");
    return 2;
  }
  static keras_iusp::StreamRunner runner(&interpreter);
  keras_iusp::StartTickCounter();

  // A loop of exactly 2 instructions per iteration (subs + bne), 2 * kLoopIterations in all.
  uint32_t n = kLoopIterations;
  const uint64_t loop_start = keras_iusp::ReadTicks();
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
  const uint64_t loop_ticks = keras_iusp::ReadTicks() - loop_start;
  printf("calibration loop_instructions %lu ticks %llu\n",
         static_cast<unsigned long>(2 * kLoopIterations),
         static_cast<unsigned long long>(loop_ticks));

  runner.Begin();
  int16_t hop[keras_iusp::kHopSamples];
  long sample = 0;
  // Warm-up: fill the frame ring up to the first window (included).
  while (runner.windows() == 0) {
    FillHop(hop, sample);
    sample += keras_iusp::kHopSamples;
    if (runner.PushAudio(hop, nullptr) != kTfLiteOk) return 1;
  }
  uint64_t stream_ticks = 0, frontend_ticks = 0;
  long hops = 0, frontend_hops = 0;
  const int first_windows = runner.windows();
  while (runner.windows() - first_windows < kMeasuredWindowHops) {
    FillHop(hop, sample);
    sample += keras_iusp::kHopSamples;
    bool invoked = false;
    const uint64_t start = keras_iusp::ReadTicks();
    if (runner.PushAudio(hop, &invoked) != kTfLiteOk) return 1;
    const uint64_t ticks = keras_iusp::ReadTicks() - start;
    stream_ticks += ticks;
    ++hops;
    if (!invoked) {
      frontend_ticks += ticks;
      ++frontend_hops;
    }
  }
  printf("frontend_hop ticks %llu count %ld\n", static_cast<unsigned long long>(frontend_ticks),
         frontend_hops);
  printf("stream hops %ld windows %d ticks %llu\n", hops, runner.windows() - first_windows,
         static_cast<unsigned long long>(stream_ticks));

  // Invoke() alone, on the last window's input as the runner left it.
  uint64_t invoke_ticks = 0;
  for (int i = 0; i < kBareInvokes; ++i) {
    if (interpreter.Reset() != kTfLiteOk) return 1;
    const uint64_t start = keras_iusp::ReadTicks();
    if (interpreter.Invoke() != kTfLiteOk) return 1;
    invoke_ticks += keras_iusp::ReadTicks() - start;
  }
  printf("invoke ticks %llu count %d\n", static_cast<unsigned long long>(invoke_ticks),
         kBareInvokes);
  printf("arena used %u of %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()),
         static_cast<unsigned>(sizeof(g_arena)));
  printf("budget done\n");
  return 0;
}
