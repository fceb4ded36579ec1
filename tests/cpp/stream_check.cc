// Test program for the generated streaming assets (tests/test_streaming_export.py): builds
// against the real TFLite-Micro, checks stream_settings.h against the model, and runs the
// streaming loop the header documents over int8 blocks read from a file, writing the int8
// frame logits of every block.
//   stream_check BLOCKS.bin OUT.bin
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "stream_model_data.h"
#include "stream_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace ks = keras_iusp_stream;

alignas(16) static uint8_t g_arena[ks::kTensorArenaSize];

static int Fail(const char* what) {
  printf("FAIL: %s\n", what);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 3) return Fail("usage: stream_check BLOCKS.bin OUT.bin");
  const tflite::Model* model = tflite::GetModel(g_stream_model_data);
  ks::OpResolver resolver;
  if (ks::RegisterOps(resolver) != kTfLiteOk) return Fail("RegisterOps");
  tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors");
  if (interpreter.inputs_size() != ks::kNumStates + 1) return Fail("number of inputs");
  if (interpreter.outputs_size() != ks::kNumStates + 1) return Fail("number of outputs");
  TfLiteTensor* block = interpreter.input(ks::kBlockInputIndex);
  TfLiteTensor* logits = interpreter.output(ks::kLogitsOutputIndex);
  if (block->bytes != static_cast<size_t>(ks::kBlockFrames) * block->dims->data[2])
    return Fail("block size");
  if (block->params.zero_point != ks::kBlockZeroPoint) return Fail("block zero point");
  if (logits->params.zero_point != ks::kLogitsZeroPoint) return Fail("logits zero point");
  for (int s = 0; s < ks::kNumStates; ++s) {
    const ks::StateTensor& st = ks::kStates[s];
    TfLiteTensor* in = interpreter.input(st.input_index);
    TfLiteTensor* out = interpreter.output(st.output_index);
    if (in->bytes != static_cast<size_t>(st.elements) || out->bytes != in->bytes)
      return Fail(st.name);
    if (in->params.zero_point != st.input_zero_point ||
        out->params.zero_point != st.output_zero_point)
      return Fail(st.name);
    memset(in->data.int8, st.input_zero_point, in->bytes);  // zero state
  }
  FILE* src = fopen(argv[1], "rb");
  FILE* dst = fopen(argv[2], "wb");
  if (src == nullptr || dst == nullptr) return Fail("cannot open files");
  // All state outputs are read before any state input is written: TFLM may place an output
  // in the arena where an input that was consumed earlier in the graph lived.
  static int8_t staged[65536];
  int blocks = 0;
  while (fread(block->data.int8, 1, block->bytes, src) == block->bytes) {
    if (interpreter.Invoke() != kTfLiteOk) return Fail("Invoke");
    ++blocks;
    fwrite(logits->data.int8, 1, logits->bytes, dst);
    int offset = 0;
    for (int s = 0; s < ks::kNumStates; ++s) {
      const ks::StateTensor& st = ks::kStates[s];
      const int8_t* out = interpreter.output(st.output_index)->data.int8;
      if (offset + st.elements > static_cast<int>(sizeof(staged))) return Fail("state size");
      for (int i = 0; i < st.elements; ++i) {  // requantise (a copy when the scales match)
        float real = st.output_scale * (out[i] - st.output_zero_point);
        long q = lroundf(real / st.input_scale) + st.input_zero_point;
        staged[offset + i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
      }
      if (st.reset_after_blocks == blocks) memset(staged + offset, st.input_zero_point,
                                                  st.elements);
      offset += st.elements;
    }
    offset = 0;
    for (int s = 0; s < ks::kNumStates; ++s) {
      const ks::StateTensor& st = ks::kStates[s];
      memcpy(interpreter.input(st.input_index)->data.int8, staged + offset, st.elements);
      offset += st.elements;
    }
  }
  fclose(src);
  fclose(dst);
  printf("%d blocks, arena used: %zu\n", blocks, interpreter.arena_used_bytes());
  return 0;
}
