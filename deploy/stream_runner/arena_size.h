// Size of the application's tensor arena.
//
// The export measures kTensorArenaSize on the host (TFLite-Micro's reference kernels). Kernels
// optimised for a target (CMSIS-NN, ...) can need more scratch, so a target build defines
// KERAS_IUSP_ARENA_BYTES with the arena measured on that target (tests/cortex_m4_target.py
// measures it on the emulated Cortex-M4F for every export and builds with it); without it the
// arena is the host measurement plus kArenaHeadroom.

#ifndef KERAS_IUSP_ARENA_SIZE_H_
#define KERAS_IUSP_ARENA_SIZE_H_

#include "model_settings.h"

namespace keras_iusp {

constexpr int kArenaHeadroom = 1024;
#ifdef KERAS_IUSP_ARENA_BYTES
constexpr int kArenaBytes = KERAS_IUSP_ARENA_BYTES;
#else
constexpr int kArenaBytes = kTensorArenaSize + kArenaHeadroom;
#endif

}  // namespace keras_iusp

#endif  // KERAS_IUSP_ARENA_SIZE_H_
