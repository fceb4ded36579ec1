"""Streaming rebuild of a zoo model: blocks of new frames in, frame logits and carried state out.

:func:`build_streaming` turns a trained whole-clip model (a linear chain of zoo layers: the
CNN-LSTM and DS-CNN students, and the mean-pooled teacher) into a ``tf_keras`` model that takes
one block of ``block_frames`` raw log-mel frames plus its state tensors and returns the logits of
the frames that block completes plus the new state tensors. Nothing is stateful inside the model:
every piece of memory is an explicit input/output pair, carried by the runner
(:func:`run_stream`), because TFLite-Micro's CMSIS-NN LSTM kernel starts every invoke from a zero
state. The weights are copied from the trained model; nothing is retrained.

How each layer streams (time is axis 1):

* A convolution or pooling with time kernel ``k`` and stride ``s`` keeps the last ``r`` frames of
  its input (``r >= k - s``, chosen so that its outputs fall on the whole-clip model's stride
  grid), concatenates them in front of the new block and runs with ``valid`` time padding.
  Frequency keeps the original padding (an explicit ``PAD``).
* ``same`` time padding is reproduced by the zero-initialised state: a clip start looks exactly
  like ``p = max(k - s, 0) // 2`` zero frames before the first frame, which is TensorFlow's left
  padding whenever the clip length is a multiple of the layer's stride. Exactness therefore holds
  for clips whose frame count is a multiple of :attr:`StreamingModel.frame_stride` (every clip of
  a whole number of seconds at the default 25 ms / 10 ms framing is).
* A layer that needs clean zeros at the clip start (a ``same``-padded convolution, the LSTM) but
  sits behind another time layer would otherwise see that layer's *pre-clip* outputs (computed on
  the padding) where the whole-clip model has zeros. The builder delays its input by a short delay
  line so that all pre-clip frames fill whole blocks, and the runner zeroes that layer's state
  after those warm-up blocks (:attr:`StateTensor.reset_after_blocks`). The first
  :attr:`StreamingModel.warmup_frames` output frames are pre-clip and are discarded.
* The LSTM is unrolled over the block in primitive ops (fully connected, logistic, tanh, mul,
  add), with ``h`` and ``c`` as state tensors.
* The clip head (mean over time, then the ``logits`` dense layer) becomes per-frame logits: the
  dense layer is affine, so the mean of the frame logits is the clip logit; the runner keeps the
  running mean. Heads that also take a maximum over time are rejected.

At the clip end the whole-clip model pads every inner ``same`` convolution with zeros; a stream
has no end, so the last :attr:`StreamingModel.tail_frames` frame outputs of a clip (those whose
receptive field reaches that inner padding) differ. All other frame outputs are equal to float
tolerance (tests/test_streaming.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from keras_iusp.models.layers import FeatureStandardization, StepDropout
from keras_iusp.utils.errors import ConfigError

layers = keras.layers

#: Families the streaming export is tested on (the builder accepts any chain of supported layers).
STREAMING_FAMILIES = ("cnn_lstm", "dscnn")


@dataclass(frozen=True)
class StateTensor:
    """One carried state: model input ``name`` and the output of the same name + ``_out``.

    ``reset_after_blocks`` > 0: the runner zeroes it after that many blocks of a new stream
    (the end of the warm-up for this layer); 0: it is only zero at the start.
    """

    name: str
    shape: tuple[int, ...]
    layer: str
    reset_after_blocks: int


@dataclass(frozen=True)
class StreamingModel:
    """A streaming model and what its runner must know about it."""

    model: keras.Model
    block_frames: int  # input frames per invoke
    frame_stride: int  # input frames per output frame
    states: tuple[StateTensor, ...]
    warmup_frames: int  # leading output frames that precede the stream's first frame
    tail_frames: int  # last output frames of a clip that differ from the whole-clip model
    pad_frame: np.ndarray  # raw log-mel frame the model sees as zero (the feature mean)
    cell_clip: float | None = None  # bound of every LSTM cell state (None: not bounded)

    @property
    def output_frames(self) -> int:
        return self.block_frames // self.frame_stride

    @property
    def warmup_blocks(self) -> int:
        return max([s.reset_after_blocks for s in self.states] + [0])

    def zero_states(self) -> list[np.ndarray]:
        return [np.zeros(s.shape, np.float32) for s in self.states]


#: The LSTM cell-state bound of the int8 streaming export: ``tanh(8) = 1 - 2.3e-7``, far inside
#: one int8 step of ``h`` (1/128), so a clipped unit's output does not change.
DEFAULT_CELL_CLIP = 8.0


def valid_block_frames(model: keras.Model) -> int:
    """The block sizes a model accepts are the positive multiples of this (its time stride)."""
    stride = 1
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            stride *= int(layer.strides[0])
        elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
            stride *= int(layer.strides[0])
    return stride


def check_block_frames(model: keras.Model, block_frames: object,
                       label: str = "block_frames") -> None:
    """Raise :class:`ConfigError` (naming ``label``) unless ``block_frames`` is a positive
    multiple of the model's time stride (:func:`valid_block_frames`)."""
    stride = valid_block_frames(model)
    if isinstance(block_frames, bool) or not isinstance(block_frames, (int, np.integer)) \
            or block_frames < 1 or block_frames % stride:
        raise ConfigError(f"{label}={block_frames!r}: {model.name} streams blocks of a "
                          f"positive multiple of {stride} frames (its time stride)")


class _Builder:
    """Tracks, along the chain, the block length, the pre-clip delay and the state tensors."""

    def __init__(self, block: int, n_mels: int) -> None:
        self.block = block
        self.stride = 1
        self.delay = 0  # leading frames of the current stream that precede the clip
        self.tail = 0  # last in-clip frames of the current stream that differ at a clip end
        self.post_clip_is_zero = True  # frames past the clip end equal the model's zero padding
        self.state_inputs: list = []
        self.state_outputs: list = []
        self.states: list[StateTensor] = []
        self.inputs = keras.Input(batch_shape=(1, block, n_mels), name="log_mel_block")

    def _state(self, shape: tuple[int, ...], layer: str, suffix: str, reset: int):
        name = f"{layer}_{suffix}"
        tensor = keras.Input(batch_shape=(1, *shape), name=name)
        self.state_inputs.append(tensor)
        self.states.append(StateTensor(name, (1, *shape), layer, reset))
        return tensor

    def _output_state(self, tensor) -> None:
        name = self.states[len(self.state_outputs)].name
        self.state_outputs.append(layers.Identity(name=f"{name}_out")(tensor))

    @staticmethod
    def _crop(x, start: int, stop: int, name: str):
        length = int(x.shape[1])
        if (start, stop) == (0, length):
            return x
        crop = (start, length - stop)
        if x.shape.rank == 3:
            return layers.Cropping1D(crop, name=name)(x)
        return layers.Cropping2D((crop, (0, 0)), name=name)(x)

    def _buffered(self, x, frames: int, layer: str, suffix: str, reset: int):
        """``[state (frames), x]`` along time; the last ``frames`` become the new state."""
        state = self._state((frames, *(int(d) for d in x.shape[2:])), layer, suffix, reset)
        joined = layers.Concatenate(axis=1, name=f"{layer}_{suffix}_join")([state, x])
        total = int(joined.shape[1])
        self._output_state(self._crop(joined, total - frames, total, f"{layer}_{suffix}_keep"))
        return joined

    def align(self, x, layer: str):
        """Delay ``x`` so that its pre-clip frames fill whole blocks; returns the warm-up length
        in blocks after which the layer's own state must be zeroed (0: clean from the start)."""
        if self.delay % self.block:
            extra = self.block - self.delay % self.block
            joined = self._buffered(x, extra, layer, "delay", 0)
            x = self._crop(joined, 0, self.block, f"{layer}_delay_pass")
            self.delay += extra
        return x, self.delay // self.block

    def time_window(self, x, layer: str, kernel: int, stride: int, pad: int, clean: bool):
        """The frames a ``valid`` time op with ``kernel``/``stride`` needs for one block."""
        if self.block % stride:
            raise ConfigError(f"layer {layer}: block of {self.block} frames at its input is not "
                              f"a multiple of its time stride {stride}")
        reset = 0
        if clean:
            x, reset = self.align(x, layer)
        keep = max(kernel - stride, 0)
        while (keep + self.delay - pad) % stride or keep + self.delay - pad < 0:
            keep += 1
        joined = self._buffered(x, keep, layer, "state", reset) if keep else x
        window = self._crop(joined, 0, self.block - stride + kernel, f"{layer}_window")
        # frames past a clip end: zero padding for the first time layer (the runner pads with
        # the frame the model sees as zero), other layers' outputs (not zero) further in
        if not (self.post_clip_is_zero and self.tail == 0):
            self.tail = (kernel - 1 - pad + self.tail) // stride
        self.post_clip_is_zero = False
        self.delay = (keep + self.delay - pad) // stride
        self.block //= stride
        self.stride *= stride
        return window


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``same`` padding (before, after) of one axis of length ``size``."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(b: _Builder, layer, x):
    kt, kf = (int(v) for v in layer.kernel_size)
    st, sf = (int(v) for v in layer.strides)
    if tuple(layer.dilation_rate) != (1, 1):
        raise ConfigError(f"layer {layer.name}: dilated convolutions do not stream")
    config = layer.get_config()
    same = config["padding"] == "same"
    pad = max(kt - st, 0) // 2 if same else 0
    freq = _same_pad(int(x.shape[2]), kf, sf) if same else (0, 0)
    window = b.time_window(x, layer.name, kt, st, pad, clean=pad > 0)
    if any(freq):
        window = layers.ZeroPadding2D(((0, 0), freq), name=f"{layer.name}_freq_pad")(window)
    clone = type(layer).from_config({**config, "padding": "valid",
                                     "name": f"{layer.name}_stream"})
    y = clone(window)
    clone.set_weights(layer.get_weights())
    return y


def _pool(b: _Builder, layer, x):
    kt, st = int(layer.pool_size[0]), int(layer.strides[0])
    if (kt, st) == (1, 1):
        return layer(x)
    if layer.padding != "valid":
        raise ConfigError(f"layer {layer.name}: only 'valid' pooling over time streams")
    return layer(b.time_window(x, layer.name, kt, st, 0, clean=False))


def _lstm(b: _Builder, layer, x, cell_clip: float | None = None):
    config = layer.get_config()
    if (not config["return_sequences"] or config["go_backwards"] or config["stateful"]
            or config["activation"] != "tanh" or config["recurrent_activation"] != "sigmoid"
            or not config["use_bias"]):
        raise ConfigError(f"layer {layer.name}: only a forward, tanh/sigmoid LSTM with bias and "
                          "return_sequences=True streams")
    units = int(config["units"])
    x, reset = b.align(x, layer.name)
    h = b._state((units,), layer.name, "h", reset)
    c = b._state((units,), layer.name, "c", reset)
    kernel, recurrent, bias = layer.get_weights()
    project = layers.Dense(4 * units, name=f"{layer.name}_input")
    recur = layers.Dense(4 * units, use_bias=False, name=f"{layer.name}_recurrent")
    z_all = project(x)
    project.set_weights([kernel, bias])
    sigmoid, tanh = tf.math.sigmoid, tf.math.tanh
    outputs = []
    for t in range(b.block):
        z = z_all[:, t] + recur(h)
        gate_i, gate_f = sigmoid(z[:, :units]), sigmoid(z[:, units:2 * units])
        cand, gate_o = tanh(z[:, 2 * units:3 * units]), sigmoid(z[:, 3 * units:])
        c = gate_f * c + gate_i * cand
        if cell_clip is not None:
            c = tf.clip_by_value(c, -cell_clip, cell_clip)
        h = gate_o * tanh(c)
        outputs.append(h)
    recur.set_weights([recurrent])
    b._output_state(h)
    b._output_state(c)
    return tf.stack(outputs, axis=1)


def check_streamable(model: keras.Model) -> None:
    """Raise :class:`ConfigError` unless ``model`` is a plain chain of layers whose head averages
    over time (the only clip pooling the runner streams)."""
    peaks = [la.name for la in model.layers if isinstance(la, layers.GlobalMaxPooling1D)]
    if peaks:
        raise ConfigError(f"{model.name}: its head takes a maximum over time (layer {peaks[0]}), "
                          "which does not stream; export it without --streaming")
    previous = None
    for entry in model.get_config()["layers"]:
        nodes = entry.get("inbound_nodes", [])
        if previous is not None and (len(nodes) != 1 or len(nodes[0]) != 1
                                     or nodes[0][0][0] != previous):
            raise ConfigError(f"layer {entry['name']}: streaming needs a plain chain of layers")
        previous = entry["name"]


def build_streaming(model: keras.Model, block_frames: int,
                    cell_clip: float | None = None) -> StreamingModel:
    """Streaming copy of a whole-clip model for blocks of ``block_frames`` input frames.

    ``block_frames`` must be a positive multiple of :func:`valid_block_frames` (2 for the
    CNN-LSTM and DS-CNN students); anything else raises :class:`ConfigError`.

    ``cell_clip`` bounds every LSTM cell state to ``[-cell_clip, cell_clip]`` after each step
    (as TFLite's LSTM ``cell_clip`` option does). Without it the rebuild is exact; with it, a
    unit whose state the whole-clip model lets grow without bound (a forget gate near 1) keeps
    its output, since ``tanh`` has saturated long before :data:`DEFAULT_CELL_CLIP`, while the
    state stays in a range a per-tensor int8 scale can resolve for the other units. Only a unit
    that would swing back from beyond the bound differs: it recovers sooner.
    """
    if cell_clip is not None and not cell_clip > 0:
        raise ConfigError(f"cell_clip={cell_clip}: expected a positive bound or None")
    check_block_frames(model, block_frames)
    check_streamable(model)
    b = _Builder(int(block_frames), int(model.input.shape[-1]))
    x = b.inputs
    pad_frame = None
    pooled = False
    for layer in model.layers[1:]:
        if pooled and not isinstance(layer, layers.Dense):
            raise ConfigError(f"layer {layer.name}: after the mean over time only the dense "
                              "logits layer streams")
        if isinstance(layer, FeatureStandardization):
            pad_frame = np.asarray(layer.mean, np.float32)
            x = layer(x)
        elif isinstance(layer, layers.Reshape):
            x = layer(x)
        elif isinstance(layer, StepDropout):
            continue
        elif isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            x = _conv(b, layer, x)
        elif isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
            x = _pool(b, layer, x)
        elif isinstance(layer, layers.LSTM):
            x = _lstm(b, layer, x, cell_clip)
        elif isinstance(layer, layers.GlobalAveragePooling1D):
            pooled = True
        elif isinstance(layer, (layers.BatchNormalization, layers.ReLU, layers.Dense,
                                layers.Activation)):
            if not isinstance(layer, layers.Dense) or not pooled:
                b.post_clip_is_zero = False
            x = layer(x)
        else:
            raise ConfigError(f"layer {layer.name} ({type(layer).__name__}) has no streaming "
                              "equivalent; a head with a maximum over time does not stream")
    if not pooled:
        raise ConfigError(f"{model.name}: no mean-over-time head found")
    if pad_frame is None:
        pad_frame = np.zeros(int(model.input.shape[-1]), np.float32)
    logits = layers.Identity(name="frame_logits")(x)
    stream = keras.Model([b.inputs, *b.state_inputs], [logits, *b.state_outputs],
                         name=f"{model.name}_stream{block_frames}")
    return StreamingModel(stream, int(block_frames), b.stride, tuple(b.states), b.delay,
                          b.tail, pad_frame, cell_clip)


def frame_logits_model(model: keras.Model) -> keras.Model:
    """The whole-clip model's per-frame logits: its ``logits`` layer before the mean over time."""
    pool = next((la for la in model.layers if isinstance(la, layers.GlobalAveragePooling1D)),
                None)
    if pool is None:
        raise ConfigError(f"{model.name}: no mean-over-time head")
    return keras.Model(model.input, model.get_layer("logits")(pool.input))


#: ``invoke(block, states) -> (frame_logits, new_states)``: one model call of a runner.
Invoke = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def keras_invoke(streaming: StreamingModel) -> Invoke:
    """Float invoke of the Keras streaming model (graph-compiled once)."""
    call = tf.function(lambda args: streaming.model(args, training=False))

    def invoke(block: np.ndarray, states: list[np.ndarray]):
        outs = call([tf.constant(block[None], tf.float32),
                     *(tf.constant(s, tf.float32) for s in states)])
        return np.asarray(outs[0])[0], [np.asarray(o) for o in outs[1:]]

    return invoke


def run_stream(streaming: StreamingModel, frames: np.ndarray, invoke: Invoke | None = None, *,
               carry_state: bool = True, reset_every_blocks: int | None = None) -> np.ndarray:
    """Frame logits ``[T // frame_stride, classes]`` of raw log-mel ``frames [T, n_mels]``.

    The stream starts from zero states; after block ``n`` every state whose
    ``reset_after_blocks == n`` is zeroed (warm-up), the first ``warmup_frames`` outputs are
    dropped and the last block is completed with :attr:`StreamingModel.pad_frame` frames.
    ``reset_every_blocks``: additionally restart the whole stream (all states zero, warm-up
    again, outputs of the warm-up dropped) every that many blocks of audio -- the periodic reset
    option; restarts cost the frames of one warm-up each time. ``carry_state=False`` zeroes every
    state before every block (for tests: what forgetting the state does).
    """
    invoke = invoke or keras_invoke(streaming)
    frames = np.asarray(frames, np.float32)
    n_out = frames.shape[0] // streaming.frame_stride
    if reset_every_blocks is not None and reset_every_blocks < 1:
        raise ConfigError(f"reset_every_blocks={reset_every_blocks}: expected >= 1")
    segment = (reset_every_blocks or 0) * streaming.block_frames
    if segment:
        parts = [run_stream(streaming, frames[s:s + segment], invoke, carry_state=carry_state)
                 for s in range(0, frames.shape[0], segment)]
        return np.concatenate(parts)[:n_out]
    needed = (streaming.warmup_frames + n_out) * streaming.frame_stride
    blocks = max(1, math.ceil(needed / streaming.block_frames))
    padded = np.tile(streaming.pad_frame, (blocks * streaming.block_frames, 1))
    padded[:frames.shape[0]] = frames
    states = streaming.zero_states()
    outputs = []
    for n in range(blocks):
        if not carry_state:
            states = streaming.zero_states()
        block = padded[n * streaming.block_frames:(n + 1) * streaming.block_frames]
        logits, states = invoke(block, states)
        outputs.append(logits)
        for i, spec in enumerate(streaming.states):
            if spec.reset_after_blocks == n + 1:
                states[i] = np.zeros_like(states[i])
    out = np.concatenate(outputs)[streaming.warmup_frames:]
    return out[:n_out]


def clip_logits(frame_logits: np.ndarray, tail: int = 0) -> np.ndarray:
    """Clip logits as the whole-clip head computes them: the mean of the frame logits (leaving
    out the last ``tail`` frames when given)."""
    frame_logits = np.asarray(frame_logits)
    kept = frame_logits[:len(frame_logits) - tail] if tail else frame_logits
    return kept.mean(axis=0)


def describe(streaming: StreamingModel) -> dict:
    """JSON-ready summary: block, stride, warm-up, tail and each state tensor."""
    return {
        "block_frames": streaming.block_frames,
        "frame_stride": streaming.frame_stride,
        "output_frames_per_block": streaming.output_frames,
        "warmup_frames": streaming.warmup_frames,
        "warmup_blocks": streaming.warmup_blocks,
        "tail_frames": streaming.tail_frames,
        "states": [{"name": s.name, "shape": list(s.shape), "layer": s.layer,
                    "reset_after_blocks": s.reset_after_blocks} for s in streaming.states],
        "state_values": int(sum(int(np.prod(s.shape)) for s in streaming.states)),
        "lstm_cell_clip": streaming.cell_clip,
    }
