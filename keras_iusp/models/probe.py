"""Reading a layer's output inside a model: the one graph-aware probe every reader uses.

A layer object can belong to several functional graphs: TFMOT's ``quantize_apply`` reuses the
layers it does not wrap (e.g. an LSTM) in the quantised model, and ``layer.output`` is then the
tensor of the *first* graph, so a probe built from it is disconnected from the model it was
asked about (or silently reads the float model). :func:`layer_output` picks the node of this
model's own graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import tf_keras as keras


def layer_output(model: keras.Model, name: str):
    """The symbolic output of layer ``name`` in ``model``'s own graph."""
    layer = model.get_layer(name)
    for index in range(len(layer._inbound_nodes)):
        if f"{layer.name}_ib-{index}" in model._network_nodes:
            return layer.get_output_at(index)
    return layer.output


def layer_probe(model: keras.Model, names: str | Sequence[str], *,
                with_logits: bool = False, name: str | None = None) -> keras.Model:
    """A model sharing ``model``'s layers that returns the named layers' outputs (one tensor for
    one name, else a list), preceded by ``model``'s output when ``with_logits``."""
    single = isinstance(names, str)
    outputs = [layer_output(model, n) for n in ([names] if single else names)]
    if with_logits:
        outputs = [model.output] + outputs
    elif single:
        outputs = outputs[0]
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_probe")
