#include "stream_runner.h"

#include <math.h>
#include <string.h>

namespace keras_iusp {

StreamRunner::StreamRunner(tflite::MicroInterpreter* interpreter) : interpreter_(interpreter) {
  Begin();
}

void StreamRunner::Begin() {
  FrontendInit(&frontend_);
  memset(ring_, 0, sizeof(ring_));
  for (int c = 0; c < kNumClasses; ++c) max_logits_[c] = window_logits_[c] = -128;
  next_row_ = 0;
  frames_ = 0;
  last_window_end_ = -1;
  windows_ = 0;
}

TfLiteStatus StreamRunner::PushAudio(const int16_t* hop, bool* invoked) {
  if (invoked != nullptr) *invoked = false;
  if (!FrontendPush(&frontend_, hop, log_mel_)) return kTfLiteOk;
  int8_t row[kNumMelBins];
  QuantizeFrame(log_mel_, row);
  return PushFrame(row, invoked);
}

TfLiteStatus StreamRunner::PushFrame(const int8_t* row, bool* invoked) {
  if (invoked != nullptr) *invoked = false;
  memcpy(ring_[next_row_], row, kNumMelBins);
  next_row_ = (next_row_ + 1) % kNumFrames;
  ++frames_;
  if (frames_ < kNumFrames || (frames_ - kNumFrames) % kWindowHopFrames != 0) return kTfLiteOk;
  if (invoked != nullptr) *invoked = true;
  return RunWindow();
}

TfLiteStatus StreamRunner::Finish() {
  if (frames_ < kNumFrames || last_window_end_ == frames_) return kTfLiteOk;
  return RunWindow();
}

TfLiteStatus StreamRunner::RunWindow() {
  // Every window starts from a cleared LSTM state, as in training windows and `evaluate`.
  TF_LITE_ENSURE_STATUS(interpreter_->Reset());
  TfLiteTensor* input = interpreter_->input(0);
  // Oldest frame first: rows next_row_..end, then 0..next_row_-1 (the ring is full here).
  const int older = kNumFrames - next_row_;
  memcpy(input->data.int8, ring_[next_row_], older * kNumMelBins);
  memcpy(input->data.int8 + older * kNumMelBins, ring_[0], next_row_ * kNumMelBins);
  TF_LITE_ENSURE_STATUS(interpreter_->Invoke());
  const int8_t* out = interpreter_->output(0)->data.int8;
  for (int c = 0; c < kNumClasses; ++c) {
    window_logits_[c] = out[c];
    if (out[c] > max_logits_[c]) max_logits_[c] = out[c];
  }
  last_window_end_ = frames_;
  ++windows_;
  return kTfLiteOk;
}

float StreamRunner::Probability(int class_index) const {
  const float logit = kOutputScale * (max_logits_[class_index] - kOutputZeroPoint);
  return 1.0f / (1.0f + expf(-logit));
}

}  // namespace keras_iusp
