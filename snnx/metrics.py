"""Accuracy functions matching `snnx.losses`, firing rates, and NeuroBench-style counts.

The layout conventions are those of `snnx.losses`: `outputs` of shape
`(batch, time, classes)`, integer `labels` of shape `(batch,)`.
"""

import functools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from . import losses as _losses
from ._rates import spike_rates
from .layers._util import is_stateful
from .layers.sequential import Sequential
from .layers.sparse import SparseLinear

__all__ = [
    "predict_rate",
    "predict_max_membrane",
    "predict_mean_membrane",
    "predict_first_spike",
    "accuracy",
    "accuracy_rate",
    "accuracy_max_membrane",
    "accuracy_mean_membrane",
    "accuracy_first_spike",
    "predictor_for",
    "firing_rates",
    "activation_sparsity",
    "synaptic_operations",
]


def _outputs(outputs, time_axis):
    outputs = jnp.asarray(outputs)
    if outputs.ndim != 3:
        raise ValueError(
            f"`outputs` must have shape (batch, time, classes), got {outputs.shape}; for one "
            f"sample add a batch axis (`outputs[None]`)."
        )
    return jnp.moveaxis(outputs, time_axis, 1)


def predict_rate(outputs: Float[ArrayLike, "batch time classes"], *, time_axis: int = 1
                 ) -> Int[Array, " batch"]:
    """The class with the most output spikes (first index on ties). Matches `ce_rate`,
    `ce_count` and `mse_count`.

    **Arguments:**

    - `outputs`: shape `(batch, time, classes)`.
    - `time_axis`: the time axis. Default 1.

    **Returns:**

    Predicted classes, shape `(batch,)`.
    """
    return jnp.argmax(jnp.sum(_outputs(outputs, time_axis), axis=1), axis=-1)


def predict_max_membrane(outputs, *, time_axis: int = 1):
    """The class whose readout membrane reaches the highest value. Matches `ce_max_membrane`.

    Arguments and return as for `predict_rate`.
    """
    return jnp.argmax(jnp.max(_outputs(outputs, time_axis), axis=1), axis=-1)


def predict_mean_membrane(outputs, *, time_axis: int = 1):
    """The class with the highest mean readout membrane. Matches `ce_mean_membrane`.

    Arguments and return as for `predict_rate`.
    """
    return jnp.argmax(jnp.mean(_outputs(outputs, time_axis), axis=1), axis=-1)


def predict_first_spike(outputs, *, time_axis: int = 1):
    """The class whose output neuron spikes first. Matches `ce_first_spike`.

    Arguments and return as for `predict_rate`.
    """
    t = _losses.first_spike_times(_outputs(outputs, time_axis))
    return jnp.argmin(t, axis=-1)


def accuracy(predictions: Int[ArrayLike, " batch"], labels: Int[ArrayLike, " batch"]
             ) -> Float[Array, ""]:
    """Fraction of `predictions` equal to `labels` (both shape `(batch,)`).

    **Raises:**

    `ValueError` if the shapes differ.
    """
    predictions, labels = jnp.asarray(predictions), jnp.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(
            f"`predictions` {predictions.shape} and `labels` {labels.shape} must have the "
            f"same shape (batch,)."
        )
    return jnp.mean((predictions == labels).astype(jnp.float32))


def _make_accuracy(predict):
    def acc(outputs, labels, *, time_axis: int = 1):
        return accuracy(predict(outputs, time_axis=time_axis), labels)

    acc.__name__ = predict.__name__.replace("predict", "accuracy")
    acc.__doc__ = (
        f"Accuracy of `{predict.__name__}` against integer `labels` of shape (batch,).\n\n"
        "**Returns:**\n\nThe fraction correct, a scalar."
    )
    return acc


accuracy_rate = _make_accuracy(predict_rate)
accuracy_max_membrane = _make_accuracy(predict_max_membrane)
accuracy_mean_membrane = _make_accuracy(predict_mean_membrane)
accuracy_first_spike = _make_accuracy(predict_first_spike)

_PREDICTORS = {
    _losses.ce_rate: predict_rate,
    _losses.ce_count: predict_rate,
    _losses.mse_count: predict_rate,
    _losses.ce_max_membrane: predict_max_membrane,
    _losses.ce_mean_membrane: predict_mean_membrane,
    _losses.ce_first_spike: predict_first_spike,
}


def predictor_for(loss):
    """The prediction function that matches a loss from `snnx.losses`, or None.

    `functools.partial` wrappers are looked through, so `partial(ce_rate, time_axis=1)` maps
    to `predict_rate`.

    **Arguments:**

    - `loss`: a loss function.

    **Returns:**

    A function `outputs -> predicted classes (batch,)`, or None for an unknown loss.
    """
    while isinstance(loss, functools.partial):
        loss = loss.func
    try:
        return _PREDICTORS.get(loss)
    except TypeError:  # unhashable callables
        return None


def firing_rates(spikes, *, time_axis: int = 1) -> Float[Array, "*neurons"]:
    """Per-neuron firing rate, spikes per step, averaged over batch and time.

    **Arguments:**

    - `spikes`: shape `(batch, time, *neurons)`, or an `snnx.LayerRecord` holding them.
    - `time_axis`: the time axis. Default 1.

    **Returns:**

    An array of shape `neurons`.
    """
    return spike_rates(spikes, time_axis, "neuron")


def _spiking_layers(model, records):
    """(layer, record) pairs of the stateful layers of a `Sequential` and its records."""
    layers = model.layers if isinstance(model, Sequential) else (model,)
    if len(layers) != len(records):
        raise ValueError(
            f"`records` has {len(records)} entries but `model` has {len(layers)} layers; pass "
            f"the records from `snnx.run(model, xs, record=True)`."
        )
    return [(lay, r) for lay, r in zip(layers, records) if is_stateful(lay)]


def activation_sparsity(model, records) -> float:
    """NeuroBench activation sparsity: the fraction of zero activations of spiking layers.

    Counts the outputs of every stateful layer (neurons, recurrent layers) over all time
    steps and samples: `1 - nonzero / total`. Readout layers whose output is a membrane
    count too; leave them out by slicing (`model[:-1]`, `records[:-1]`).

    **Arguments:**

    - `model`: the `snnx.Sequential` that produced `records`.
    - `records`: the records of `snnx.run(model, xs, record=True)` (batched or not).

    **Returns:**

    A Python float in `[0, 1]`.
    """
    total = nonzero = 0
    for _, rec in _spiking_layers(model, records):
        out = np.asarray(rec.output)
        total += out.size
        nonzero += int(np.count_nonzero(out))
    if total == 0:
        raise ValueError("`model` has no stateful (spiking) layer to measure.")
    return 1.0 - nonzero / total


def synaptic_operations(model, xs, records, *, batched: bool = False) -> dict:
    """NeuroBench-style synaptic operation counts of the linear layers of a model
    (`eqx.nn.Linear`, `snnx.SparseLinear`).

    For a linear layer with `out` outputs, every nonzero input value costs `out` operations:
    an accumulate (AC) if the input is binary (a spike) and a multiply-accumulate (MAC)
    otherwise. `dense` is what the same layers cost with every input nonzero.

    **Arguments:**

    - `model`: an `snnx.Sequential`.
    - `xs`: the inputs given to `snnx.run`, `(T, *input_shape)` or batched `(B, T, ...)`.
    - `records`: the records from `snnx.run(model, xs, record=True)` (batched like `xs`).
    - `batched`: True if `xs` and `records` have a leading batch axis (from `jax.vmap`).

    **Returns:**

    `{"effective_acs": int, "effective_macs": int, "dense": int}` summed over time (and
    batch), and `"per_sample"` dividing the three by the batch size (1 if unbatched).
    """
    layers = model.layers if isinstance(model, Sequential) else None
    if layers is None or len(layers) != len(records):
        raise ValueError(
            "`model` must be the `snnx.Sequential` that produced `records` (one record per "
            "layer)."
        )
    xs = np.asarray(xs)
    acs = macs = dense = 0
    inp = xs
    for layer, rec in zip(layers, records):
        if isinstance(layer, (eqx.nn.Linear, SparseLinear)):
            nnz = int(np.count_nonzero(inp))
            binary = bool(np.all((inp == 0) | (inp == 1)))
            fan_out = 1 if layer.out_features == "scalar" else int(layer.out_features)
            if binary:
                acs += nnz * fan_out
            else:
                macs += nnz * fan_out
            dense += inp.size * fan_out
        inp = np.asarray(rec.output)
    batch = xs.shape[0] if batched else 1
    out = {"effective_acs": acs, "effective_macs": macs, "dense": dense}
    out["per_sample"] = {k: v / batch for k, v in out.items()}
    return out

