// Detector settings from a text file, for the host and emulator checks (detector_check.cc,
// block_main.cc): K, then kNumClasses on thresholds, kNumClasses off thresholds and
// kNumClasses hold-offs, whitespace-separated integers.

#ifndef KERAS_IUSP_DETECTOR_SETTINGS_FILE_H_
#define KERAS_IUSP_DETECTOR_SETTINGS_FILE_H_

#include <stdio.h>

#include "detector.h"
#include "model_settings.h"

namespace keras_iusp {

// False when the file cannot be opened or does not hold 1 + 3 * kNumClasses integers.
inline bool ReadDetectorSettings(const char* path, DetectorSettings* s) {
  FILE* f = fopen(path, "r");
  if (f == nullptr) return false;
  bool ok = fscanf(f, "%d", &s->smoothing_windows) == 1;
  int* lists[3] = {s->on_threshold, s->off_threshold, s->hold_off_windows};
  for (int list = 0; ok && list < 3; ++list) {
    for (int c = 0; ok && c < kNumClasses; ++c) ok = fscanf(f, "%d", &lists[list][c]) == 1;
  }
  fclose(f);
  return ok;
}

}  // namespace keras_iusp

#endif  // KERAS_IUSP_DETECTOR_SETTINGS_FILE_H_
