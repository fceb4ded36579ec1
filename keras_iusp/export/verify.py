"""Run exported models in TFLite-Micro and LiteRT, measure the arena, score windowed models.

TFLite-Micro is what the device runs, so every export is executed in its Python interpreter
(``tflite_micro`` package), compared with LiteRT (``ai_edge_litert``), and its smallest working
tensor arena is measured by bisection rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_iusp.utils.console import silenced_stderr
from keras_iusp.utils.errors import KerasIuspError


@dataclass(frozen=True)
class TensorQuant:
    """Shape, dtype and affine quantisation of a model's input or output tensor."""

    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if self.scale == 0:
            return x.astype(self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(x / self.scale + self.zero_point)
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.scale == 0:
            return q.astype(np.float32)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


def _litert(model_bytes: bytes, *, reference: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kernels = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_content=model_bytes, num_threads=1,
                              experimental_op_resolver_type=kernels)
    interpreter.allocate_tensors()
    return interpreter


def io_details(model_bytes: bytes) -> tuple[TensorQuant, TensorQuant]:
    """Input and output tensor descriptions of a single-input, single-output model."""
    interpreter = _litert(model_bytes)
    result = []
    for detail in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        scale, zero = detail["quantization"]
        result.append(TensorQuant(tuple(int(v) for v in detail["shape"]), np.dtype(detail["dtype"]),
                                  float(scale), int(zero)))
    return result[0], result[1]


def run_litert(model_bytes: bytes, inputs: np.ndarray, *, reference: bool = False) -> np.ndarray:
    """Outputs for each input ``[K, ...]`` (already in the model's input dtype).

    ``reference=True`` runs LiteRT's reference kernels, the implementations TFLite-Micro's
    reference kernels follow; the default runs its optimised kernels, as a phone would.
    """
    interpreter = _litert(model_bytes, reference=reference)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for x in inputs:
        interpreter.reset_all_variables()  # an LSTM's state tensors persist between invokes
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(outputs)


def _tflm(model_bytes: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model_bytes, arena_size=int(arena_size))


def _tflm_runs(model_bytes: bytes, arena_size: int, sample: np.ndarray) -> bool:
    try:
        interpreter = _tflm(model_bytes, arena_size)
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        return True
    except Exception:  # TFLM reports a too-small arena as RuntimeError/ValueError
        return False


def measure_arena(model_bytes: bytes, sample: np.ndarray, *, upper: int = 16 << 20,
                  granularity: int = 16) -> int:
    """Smallest arena (bytes, multiple of ``granularity``) with which TFLM loads and runs."""
    low, high = 0, upper
    with silenced_stderr():  # TFLM prints every failed allocation; the bisection makes many
        if not _tflm_runs(model_bytes, high, sample):
            raise KerasIuspError(
                f"TFLite-Micro cannot run the model even with a {upper}-byte arena")
        while high - low > granularity:
            middle = (low + high) // 2 // granularity * granularity
            if _tflm_runs(model_bytes, middle, sample):
                high = middle
            else:
                low = middle
    return high


def run_tflm(model_bytes: bytes, inputs: np.ndarray, arena_size: int) -> np.ndarray:
    """Outputs of the TFLite-Micro interpreter for each input ``[K, ...]``."""
    interpreter = _tflm(model_bytes, arena_size)
    outputs = []
    for x in inputs:
        interpreter.set_input(x[None], 0)
        interpreter.invoke()
        outputs.append(np.asarray(interpreter.get_output(0))[0].copy())
        interpreter.reset()  # no state carried between independent windows
    return np.stack(outputs)


def window_starts(total: int, frames: int, hop: int) -> list[int]:
    """Window starts covering ``total`` frames; the last window ends at the clip's end."""
    if frames >= total:
        return [0]
    starts = list(range(0, total - frames + 1, hop))
    if starts[-1] != total - frames:
        starts.append(total - frames)
    return starts


def windowed_clip_scores(model_bytes: bytes, clips: np.ndarray, hop: int) -> np.ndarray:
    """Clip probabilities = max over windows of each window's sigmoid output (LiteRT)."""
    inp, out = io_details(model_bytes)
    frames = inp.shape[1]
    if len(clips) and clips.shape[1] < frames:
        # the streaming runner refuses such a clip the same way (deploy/stream_runner/main.cc)
        raise KerasIuspError(f"clips of {clips.shape[1]} frames are shorter than the model's "
                             f"window of {frames} frames: score clips at least one window long, "
                             "or export with a shorter --window-seconds")
    interpreter = _litert(model_bytes)
    in_index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    scores = np.zeros((len(clips), out.shape[-1]), np.float32)
    for i, clip in enumerate(clips):
        best = np.full(out.shape[-1], -np.inf, np.float32)
        for start in window_starts(clip.shape[0], frames, hop):
            window = np.asarray(clip[start:start + frames], np.float32)
            interpreter.reset_all_variables()
            interpreter.set_tensor(in_index, inp.quantize(window)[None])
            interpreter.invoke()
            logits = out.dequantize(interpreter.get_tensor(out_index)[0])
            best = np.maximum(best, logits)
        scores[i] = 1.0 / (1.0 + np.exp(-best))
    return scores


def tflm_ms_per_window(model_bytes: bytes, inputs: np.ndarray, arena_size: int,
                       repeats: int = 3) -> float:
    """Host milliseconds per TFLite-Micro invoke (interpreter built and warmed up first, state
    reset before each window as the device does). Ranks models; it is not an MCU latency."""
    import time

    interpreter = _tflm(model_bytes, arena_size)
    interpreter.set_input(inputs[0][None], 0)
    interpreter.invoke()
    started = time.perf_counter()
    for _ in range(repeats):
        for x in inputs:
            interpreter.reset()
            interpreter.set_input(x[None], 0)
            interpreter.invoke()
    return 1000.0 * (time.perf_counter() - started) / (repeats * len(inputs))


def window_outputs(model_bytes: bytes, frames: np.ndarray, hop: int) -> np.ndarray:
    """Raw outputs ``[W, C]`` (the model's output dtype, int8 for an int8 model) of the windows
    of a continuous stream of float frames ``[T, n_mels]`` that start every ``hop`` frames (no
    end-aligned extra window: a stream has no end), each from a cleared state (LiteRT), as the
    streaming runner produces them."""
    inp, out = io_details(model_bytes)
    size = inp.shape[1]
    interpreter = _litert(model_bytes)
    in_index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    quantised = inp.quantize(np.asarray(frames, np.float32))
    starts = range(0, len(quantised) - size + 1, hop)
    result = np.zeros((len(starts), out.shape[-1]), out.dtype)
    for w, start in enumerate(starts):
        interpreter.reset_all_variables()
        interpreter.set_tensor(in_index, quantised[start:start + size][None])
        interpreter.invoke()
        result[w] = interpreter.get_tensor(out_index)[0]
    return result
