#include "block_runner.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

namespace ks = keras_iusp_stream;

namespace keras_iusp {

DetectorSettings StreamDetectorSettings() {
  DetectorSettings s;
  s.smoothing_windows = ks::kDetectorSmoothingWindows;
  for (int c = 0; c < kNumClasses; ++c) {
    s.on_threshold[c] = ks::kDetectorOnThreshold[c];
    s.off_threshold[c] = ks::kDetectorOffThreshold[c];
    s.hold_off_windows[c] = ks::kDetectorHoldOffWindows[c];
  }
  return s;
}

BlockRunner::BlockRunner(tflite::MicroInterpreter* interpreter, const DetectorSettings& detector)
    : interpreter_(interpreter), detector_(detector), listener_(nullptr) {
  Begin();
}

void BlockRunner::Begin() {
  FrontendInit(&frontend_);
  int offset = 0;
  for (int s = 0; s < ks::kNumStates; ++s) {
    memset(state_ + offset, ks::kStates[s].input_zero_point, ks::kStates[s].elements);
    offset += ks::kStates[s].elements;
  }
  for (int c = 0; c < kNumClasses; ++c) {
    max_logits_[c] = -128;
    sum_steps_[c] = 0;
    window_sum_[c] = 0;
    window_scores_[c] = -128;
  }
  row_ = first_new_output_ = window_next_ = 0;
  frames_ = outputs_ = 0;
  blocks_ = 0;
  warmup_left_ = ks::kWarmupFrames;
  window_countdown_ = ks::kWindowOutputs;
  detector_.Reset();
}

TfLiteStatus BlockRunner::PushAudio(const int16_t* hop, bool* invoked) {
  if (invoked != nullptr) *invoked = false;
  if (!FrontendPush(&frontend_, hop, log_mel_)) return kTfLiteOk;
  return PushFrame(log_mel_, invoked);
}

TfLiteStatus BlockRunner::PushFrame(const float* log_mel, bool* invoked) {
  if (invoked != nullptr) *invoked = false;
  int8_t* row = block_ + row_ * kNumMelBins;
  for (int b = 0; b < kNumMelBins; ++b) {
    float q = rintf(log_mel[b] / ks::kBlockScale + static_cast<float>(ks::kBlockZeroPoint));
    row[b] = static_cast<int8_t>(q < -128.0f ? -128 : (q > 127.0f ? 127 : q));
  }
  ++frames_;
  if (++row_ < ks::kBlockFrames) return kTfLiteOk;
  row_ = 0;
  if (invoked != nullptr) *invoked = true;
  return RunBlock();
}

TfLiteStatus BlockRunner::RunBlock() {
  memcpy(interpreter_->input(ks::kBlockInputIndex)->data.int8, block_, kBlockBytes);
  int offset = 0;
  for (int s = 0; s < ks::kNumStates; ++s) {
    memcpy(interpreter_->input(ks::kStates[s].input_index)->data.int8, state_ + offset,
           ks::kStates[s].elements);
    offset += ks::kStates[s].elements;
  }
  TF_LITE_ENSURE_STATUS(interpreter_->Invoke());
  if (blocks_ < INT32_MAX) ++blocks_;
  // Every output is read before the next invoke's inputs are written (TFLM may place an
  // output where an input consumed earlier in the graph lived).
  offset = 0;
  for (int s = 0; s < ks::kNumStates; ++s) {
    const ks::StateTensor& st = ks::kStates[s];
    const int8_t* out = interpreter_->output(st.output_index)->data.int8;
    int8_t* carried = state_ + offset;
    if (st.reset_after_blocks == blocks_) {  // end of the warm-up: this state restarts at zero
      memset(carried, st.input_zero_point, st.elements);
    } else if (st.output_scale == st.input_scale && st.output_zero_point == st.input_zero_point) {
      memcpy(carried, out, st.elements);
    } else {
      const float ratio = st.output_scale / st.input_scale;
      for (int i = 0; i < st.elements; ++i) {
        const long q = lroundf((out[i] - st.output_zero_point) * ratio) + st.input_zero_point;
        carried[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
      }
    }
    offset += st.elements;
  }
  const int8_t* logits = interpreter_->output(ks::kLogitsOutputIndex)->data.int8;
  memcpy(block_logits_, logits, ks::kOutputFrames * kNumClasses);
  // Output frames before the stream start (the warm-up) are not scored.
  first_new_output_ = warmup_left_ < ks::kOutputFrames ? warmup_left_ : ks::kOutputFrames;
  warmup_left_ -= first_new_output_;
  for (int f = first_new_output_; f < ks::kOutputFrames; ++f) {
    PushOutputFrame(logits + f * kNumClasses);
  }
  return kTfLiteOk;
}

void BlockRunner::PushOutputFrame(const int8_t* logits) {
  int8_t* oldest = window_ring_[window_next_];
  for (int c = 0; c < kNumClasses; ++c) {
    const int8_t q = logits[c];
    if (q > max_logits_[c]) max_logits_[c] = q;
    sum_steps_[c] += q - ks::kLogitsZeroPoint;
    if (outputs_ >= ks::kWindowOutputs) window_sum_[c] -= oldest[c] - ks::kLogitsZeroPoint;
    window_sum_[c] += q - ks::kLogitsZeroPoint;
    oldest[c] = q;
  }
  window_next_ = (window_next_ + 1) % ks::kWindowOutputs;
  ++outputs_;
  if (--window_countdown_ > 0) return;
  window_countdown_ = ks::kWindowHopOutputs;
  // Rounded mean, half up: floor((2 S + n) / (2 n)) (C++ division truncates towards zero).
  const int32_t n = ks::kWindowOutputs;
  for (int c = 0; c < kNumClasses; ++c) {
    const int32_t num = 2 * window_sum_[c] + n;
    int32_t mean = num / (2 * n);
    if (num % (2 * n) != 0 && num < 0) --mean;
    const int32_t q = mean + ks::kLogitsZeroPoint;
    window_scores_[c] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
  if (listener_ != nullptr) listener_->OnWindow(detector_.windows(), window_scores_);
  uint8_t changes[kNumClasses];
  if (detector_.Push(window_scores_, changes) > 0) Report(changes);
}

void BlockRunner::FinishEvents() {
  uint8_t changes[kNumClasses];
  if (detector_.Flush(changes) > 0) Report(changes);
}

void BlockRunner::Report(const uint8_t* changes) {
  if (listener_ == nullptr) return;
  for (int c = 0; c < kNumClasses; ++c) {
    if (changes[c] == kDetectorOnset) {
      listener_->OnEvent(c, kDetectorOnset, detector_.onset_window(c), -1);
    } else if (changes[c] == kDetectorOffset) {
      listener_->OnEvent(c, kDetectorOffset, detector_.onset_window(c),
                         detector_.offset_window(c));
    }
  }
}

float BlockRunner::MeanLogit(int c) const {
  return outputs_ > 0 ? ks::kLogitsScale * static_cast<float>(static_cast<double>(sum_steps_[c]) /
                                                                static_cast<double>(outputs_))
                      : 0.0f;
}

}  // namespace keras_iusp
