"""What Koopman et al. (2024) measure: spikes per sample and steps to a decision."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ..layers._util import is_stateful
from ..layers.sequential import Sequential

__all__ = ["steps_to_decision", "spikes_per_sample"]


def steps_to_decision(
    outputs: Float[ArrayLike, "batch steps classes"], *, time_axis: int = 1
) -> Int[Array, " batch"]:
    """How many steps of the readout a classifier needs before its decision is final.

    The decision after step `t` is the class whose readout has the highest maximum over
    steps `0..t` (the rule of `snnx.losses.ce_max_membrane` and
    `snnx.metrics.predict_max_membrane`; for spike-count readouts pass
    `jnp.cumsum(spikes, axis=1)`). The result is the smallest `n` such that the decisions
    after steps `n-1, ..., T-1` all equal the final one: `1` if the first step already
    decides, `T` if only the last does. Steps may be time steps (`snnx.run`'s outputs) or
    micro-steps (an `Unlayered` network's `state.readout`, reshaped to
    `(batch, T * micro_steps, classes)`).

    **Arguments:**

    - `outputs`: readout values, `(batch, steps, classes)` by default.
    - `time_axis`: the steps axis. Default 1.

    **Returns:**

    An int array `(batch,)` in `[1, steps]`.

    **Raises:**

    `ValueError` if `outputs` is not 3-D.
    """
    out = jnp.asarray(outputs)
    if out.ndim != 3:
        raise ValueError(f"`outputs` must be (batch, steps, classes), got shape {out.shape}.")
    out = jnp.moveaxis(out, time_axis, 1)
    decision = jnp.argmax(jnp.maximum.accumulate(out, axis=1), axis=-1)  # (batch, steps)
    changed = decision != decision[:, -1:]
    steps = jnp.arange(1, out.shape[1] + 1)
    return jnp.max(jnp.where(changed, steps, 0), axis=1) + 1


def spikes_per_sample(model, records, *, batched: bool = False) -> float:
    """The mean number of spikes one sample makes in the whole network.

    For an `snnx.asynchronous.Unlayered` network, the spikes recorded in its state
    (hidden neurons and an `LIF` output layer); for an `snnx.Sequential`, the outputs of
    every stateful layer whose outputs are all 0 or 1 (spiking neurons; a membrane
    readout is left out), as `snnx.evaluate` reports rates.

    **Arguments:**

    - `model`: the network that produced `records`.
    - `records`: from `snnx.run(model, xs, record=True)` (under `jax.vmap` if batched).
    - `batched`: True if `records` have a leading batch axis.

    **Returns:**

    A Python float.
    """
    from ._unlayered import Unlayered, UnlayeredState

    if isinstance(model, Unlayered):
        state = records[0].state
        if not isinstance(state, UnlayeredState):
            raise ValueError("`records` must come from `snnx.run(model, xs, record=True)` of "
                             "this `Unlayered` network.")
        total = float(np.sum(np.asarray(state.spikes, np.float64)))
        n = state.spikes.shape[0] if batched else 1
        return total / n
    if not isinstance(model, Sequential) or len(model.layers) != len(records):
        raise ValueError("`model` must be an `Unlayered` network or the `snnx.Sequential` "
                         "that produced `records` (one record per layer).")
    total, n = 0.0, 1
    for layer, rec in zip(model.layers, records):
        if not is_stateful(layer):
            continue
        out = np.asarray(rec.output, np.float64)
        n = out.shape[0] if batched else 1
        if np.all((out == 0) | (out == 1)):
            total += float(out.sum())
    return total / n
