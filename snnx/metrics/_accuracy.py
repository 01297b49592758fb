"""Accuracy functions matching `snnx.losses`, and firing rates.

The layout conventions are those of `snnx.losses`: `outputs` of shape
`(batch, time, classes)`, integer `labels` of shape `(batch,)`.
"""

import functools

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .. import losses as _losses
from .._rates import spike_rates


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
