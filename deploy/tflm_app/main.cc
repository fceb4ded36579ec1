// keras-iusp on-device check: runs the exported model in TensorFlow Lite Micro on the golden
// vectors written by `keras-iusp export` and compares every int8 output with the one the TFLM
// Python interpreter produced on the host. Exit code 0 means the port is bit-exact.
//
// Build: see README.md in this folder. The asset folder (model_data.h, model_settings.h,
// op_resolver.h, golden_vectors.h) must be on the include path.

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "golden_vectors.h"
#include "model_data.h"
#include "model_settings.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

// The export measured kTensorArenaSize with the host build of TFLM; kernels optimised for a
// target (CMSIS-NN, ...) may need more scratch memory, hence the headroom, or the arena
// measured on the target given as -DKERAS_IUSP_ARENA_BYTES=N (as the Cortex-M4 tests build it).
#ifndef KERAS_IUSP_ARENA_BYTES
#define KERAS_IUSP_ARENA_BYTES (keras_iusp::kTensorArenaSize + 1024)
#endif
alignas(16) uint8_t g_tensor_arena[KERAS_IUSP_ARENA_BYTES];

float Sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

}  // namespace

int main() {
  tflite::InitializeTarget();

  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::printf("model schema %u != supported %d\n", static_cast<unsigned>(model->version()),
                TFLITE_SCHEMA_VERSION);
    return 2;
  }

  keras_iusp::OpResolver resolver;
  if (keras_iusp::RegisterOps(resolver) != kTfLiteOk) {
    std::printf("op registration failed\n");
    return 2;
  }

  tflite::MicroInterpreter interpreter(model, resolver, g_tensor_arena, sizeof(g_tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("AllocateTensors failed with a %u-byte arena\n",
                static_cast<unsigned>(sizeof(g_tensor_arena)));
    return 2;
  }
  std::printf("arena used: %u of %u bytes\n", static_cast<unsigned>(interpreter.arena_used_bytes()),
              static_cast<unsigned>(sizeof(g_tensor_arena)));

  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  if (input->type != kTfLiteInt8 || input->bytes != keras_iusp::kInputSize ||
      output->type != kTfLiteInt8 || output->bytes != keras_iusp::kNumClasses) {
    std::printf("unexpected input/output tensors\n");
    return 2;
  }

  int mismatches = 0;
  for (int v = 0; v < keras_iusp::kNumGoldenVectors; ++v) {
    std::memcpy(input->data.int8, keras_iusp::kGoldenInputs[v], keras_iusp::kInputSize);
    if (interpreter.Invoke() != kTfLiteOk) {
      std::printf("Invoke failed on vector %d\n", v);
      return 2;
    }
    std::printf("vector %d:", v);
    for (int c = 0; c < keras_iusp::kNumClasses; ++c) {
      const int8_t got = output->data.int8[c];
      const int8_t want = keras_iusp::kGoldenOutputs[v][c];
      const float logit = keras_iusp::kOutputScale * (got - keras_iusp::kOutputZeroPoint);
      std::printf(" %s=%.2f", keras_iusp::kClassNames[c], Sigmoid(logit));
      if (got != want) ++mismatches;
    }
    std::printf("\n");
    // Windows are independent: clear the LSTM state tensors before the next one.
    interpreter.Reset();
  }

  std::printf("%d passed, %d failed\n", keras_iusp::kNumGoldenVectors * keras_iusp::kNumClasses -
                                            mismatches, mismatches);
  return mismatches == 0 ? 0 : 1;
}
