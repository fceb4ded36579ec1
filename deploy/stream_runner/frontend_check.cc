// Checks a front-end port against the golden vectors of an export (frontend_golden.h/.cc):
// streams kGoldenPcm through FrontendPush/QuantizeFrame and compares every frame with the
// log-mel and int8 values the Python training pipeline computed. Needs no TFLite-Micro.
// Prints the largest log-mel difference, the int8 values that differ, and exits 0 when no int8
// value is more than one step off and at least 99.9 % are equal.

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "frontend.h"
#include "frontend_golden.h"

int main() {
  static keras_iusp::FrontendState state;
  keras_iusp::FrontendInit(&state);
  float log_mel[keras_iusp::kNumMelBins];
  int8_t row[keras_iusp::kNumMelBins];
  int frame = 0, differ = 0, worst_step = 0;
  float worst = 0.0f;
  for (int start = 0; start + keras_iusp::kHopSamples <= keras_iusp::kGoldenPcmSamples;
       start += keras_iusp::kHopSamples) {
    if (!keras_iusp::FrontendPush(&state, keras_iusp::kGoldenPcm + start, log_mel)) continue;
    if (frame >= keras_iusp::kGoldenFrames) break;
    keras_iusp::QuantizeFrame(log_mel, row);
    for (int b = 0; b < keras_iusp::kNumMelBins; ++b) {
      const float d = fabsf(log_mel[b] - keras_iusp::kGoldenLogMel[frame][b]);
      if (d > worst) worst = d;
      const int step = row[b] - keras_iusp::kGoldenFrameInt8[frame][b];
      if (step != 0) ++differ;
      if (abs(step) > worst_step) worst_step = abs(step);
    }
    ++frame;
  }
  const int total = frame * keras_iusp::kNumMelBins;
  printf("frames %d of %d, max |log-mel diff| %.6f, int8 values differing %d of %d (max %d)\n",
         frame, keras_iusp::kGoldenFrames, worst, differ, total, worst_step);
  const bool ok = frame == keras_iusp::kGoldenFrames && worst_step <= 1 && differ * 1000 <= total;
  return ok ? 0 : 1;
}
