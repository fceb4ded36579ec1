// Host check of the generated detector (detector.h/.cc) against keras_iusp.detect: reads raw
// int8 window outputs [windows][kNumClasses] from a file, streams them through a Detector and
// prints every event when it ends ("event CLASS ONSET_WINDOW OFFSET_WINDOW"), then the rest at
// the end of the stream (Flush). Without SETTINGS_FILE it uses the calibrated settings of
// model_settings.h; with one, the settings in it (format: detector_settings_file.h).
//
//   detector_check LOGITS_FILE [SETTINGS_FILE]

#include <stdint.h>
#include <stdio.h>

#include "detector.h"
#include "detector_settings_file.h"
#include "model_settings.h"

namespace {

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
  if (argc == 3 && !keras_iusp::ReadDetectorSettings(argv[2], &settings)) {
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
