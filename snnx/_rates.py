"""Firing rates of spike arrays and records, shared by `snnx.losses` and `snnx.metrics`."""

import jax.numpy as jnp

from .layers._abstract import LayerRecord


def spike_rates(spikes, time_axis: int, per: str):
    """Mean spikes per step of `(batch, time, *neurons)` spikes or an `snnx.LayerRecord`,
    per neuron (`per="neuron"`) or for the whole layer (`"layer"`)."""
    if isinstance(spikes, LayerRecord):
        spikes = spikes.output
    spikes = jnp.asarray(spikes)
    if spikes.ndim < 2:
        raise ValueError(
            f"`spikes` must have shape (batch, time, *neurons), got {spikes.shape}."
        )
    if per not in ("neuron", "layer"):
        raise ValueError(f"`per` must be 'neuron' or 'layer', got {per!r}.")
    spikes = jnp.moveaxis(spikes, time_axis, 1)
    per_neuron = jnp.mean(spikes, axis=(0, 1))
    return per_neuron if per == "neuron" else jnp.mean(per_neuron)
