// Host check of the generated detector (detector.h/.cc) against keras_iusp.detect: reads raw
// int8 window outputs [windows][kNumClasses] from a file, streams them through a Detector and
// prints every event when it ends ("event CLASS ONSET_WINDOW OFFSET_WINDOW"), then the rest at
// the end of the stream (Flush). Without SETTINGS_FILE it uses the calibrated settings of
// model_settings.h; with one, the settings in it: K, then kNumClasses on thresholds, off
// thresholds and hold-offs, whitespace-separated.
//
//   detector_check LOGITS_FILE [SETTINGS_FILE]

#include <stdint.h>
#include <stdio.h>

#include "detector.h"
#include "model_settings.h"

namespace {

bool ReadSettings(const char* path, keras_iusp::DetectorSettings* s) {
  FILE* f = fopen(path, "r");
  if (f == nullptr) return false;
  bool ok = fscanf(f, "%d", &s->smoothing_windows) == 1;
  int* lists[3] = {s->on_threshold, s->off_threshold, s->hold_off_windows};
  for (int list = 0; ok && list < 3; ++list) {
    for (int c = 0; ok && c < keras_iusp::kNumClasses; ++c) {
      ok = fscanf(f, "%d", &lists[list][c]) == 1;
    }
  }
  fclose(f);
  return ok;
}

void Report(const keras_iusp::Detector& d, const uint8_t* changes) {
  for (int c = 0; c < keras_iusp::kNumClasses; ++c) {
    if (changes[c] == keras_iusp::kDetectorOffset) {
      printf("event %d %d %d\n", c, static_cast<int>(d.onset_window(c)),
             static_cast<int>(d.offset_window(c)));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s LOGITS_FILE [SETTINGS_FILE]\n", argv[0]);
    return 2;
  }
  keras_iusp::DetectorSettings settings = keras_iusp::CalibratedDetectorSettings();
  if (argc == 3 && !ReadSettings(argv[2], &settings)) {
    fprintf(stderr, "%s: cannot read detector settings\n", argv[2]);
    return 2;
  }
  FILE* f = fopen(argv[1], "rb");
  if (f == nullptr) {
    fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  static keras_iusp::Detector detector(settings);
  int8_t logits[keras_iusp::kNumClasses];
  uint8_t changes[keras_iusp::kNumClasses];
  while (fread(logits, 1, sizeof(logits), f) == sizeof(logits)) {
    if (detector.Push(logits, changes) > 0) Report(detector, changes);
  }
  fclose(f);
  detector.Flush(changes);
  Report(detector, changes);
  printf("windows %d\n", static_cast<int>(detector.windows()));
  return 0;
}
