"""Model size report: parameters, multiply-accumulates per layer, and IUSP candidate layers.

Microcontroller budgets are set in bytes and MACs, so the zoo is described in those terms.
MACs count one multiply-add per weight use per inference (batch 1); BatchNormalization,
activations and pooling are not counted (BN folds into the preceding conv at export).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tf_keras as keras


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int
    time_steps: int | None  # length of the time axis when the output keeps one


def _shape(layer) -> tuple:
    shape = layer.output.shape
    return tuple(shape.as_list() if hasattr(shape, "as_list") else shape)


def _layer_macs(layer) -> int:
    out = _shape(layer)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return int(np.prod(out[1:]) * kh * kw)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1]
        return int(np.prod(out[1:]) * kh * kw * cin // layer.groups)
    if isinstance(layer, keras.layers.Dense):
        positions = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        return positions * int(layer.input.shape[-1]) * layer.units
    if isinstance(layer, keras.layers.LSTM):
        steps, features = layer.input.shape[1], layer.input.shape[-1]
        return int(steps) * 4 * layer.units * (int(features) + layer.units)
    return 0


def _time_steps(layer) -> int | None:
    out = _shape(layer)
    if len(out) >= 3 and out[1] is not None and out[1] > 1:
        return int(out[1])
    return None


def layer_table(model: keras.Model) -> list[LayerInfo]:
    """One :class:`LayerInfo` per layer (input layers excluded)."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        rows.append(LayerInfo(layer.name, type(layer).__name__, _shape(layer),
                              int(layer.count_params()), _layer_macs(layer), _time_steps(layer)))
    return rows


def time_axis_layers(model: keras.Model) -> list[str]:
    """Names of layers whose output is ``[B, T, ...]`` with T > 1: valid IUSP layer choices.

    The input-side ``normalize``/``add_channel`` layers are left out: matching raw features is
    not distillation.
    """
    skip = {"normalize", "add_channel"}
    return [r.name for r in layer_table(model) if r.time_steps and r.name not in skip]


def model_summary(model: keras.Model) -> dict:
    """Parameters, MACs per inference and IUSP candidate layers of ``model``, as plain data."""
    table = layer_table(model)
    return {
        "name": model.name,
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
        "macs": int(sum(r.macs for r in table)),
        "input_shape": tuple(model.input.shape.as_list()[1:]),
        "time_axis_layers": {r.name: r.time_steps for r in table
                             if r.name in set(time_axis_layers(model))},
        "layers": [r.__dict__ for r in table],
    }


def format_summary(summary: dict) -> str:
    """Text table of :func:`model_summary` output, for the CLI."""
    lines = [f"{summary['name']}: {summary['params']:,} parameters, "
             f"{summary['macs'] / 1e6:.2f} M MACs per clip, input {summary['input_shape']}"]
    lines.append(f"  {'layer':24s} {'type':22s} {'output':22s} {'params':>9s} {'MACs':>12s}  T")
    for row in summary["layers"]:
        t = row["time_steps"] if row["name"] in summary["time_axis_layers"] else ""
        lines.append(f"  {row['name']:24s} {row['kind']:22s} {str(row['output_shape'][1:]):22s} "
                     f"{row['params']:9,d} {row['macs']:12,d}  {t}")
    lines.append("  IUSP candidate layers (time axis): " + ", ".join(summary["time_axis_layers"]))
    return "\n".join(lines)
