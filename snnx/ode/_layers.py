"""Feed-forward chains of populations driven by spike times, in continuous time."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._checks import check_bound, check_channels, check_input_times
from ._simulate import Solution, simulate

_BAD_CHANNEL = (
    "snnx.ode: `input_spikes` names a channel outside [0, n_in), n_in the number of "
    "columns of `weights[0]`: fix the channels or give `weights[0]` more columns (padding "
    "entries need an `inf` time)."
)


def simulate_layers(
    neurons,
    weights,
    input_spikes: tuple[Array, Array],
    *,
    t1: float,
    max_spikes,
    **kwargs,
) -> list[Solution]:
    """Simulate a feed-forward chain of populations driven by spike times, in continuous time.

    Layer `l` receives the spikes of layer `l-1` (the first layer: the input spikes) through
    `weights[l]`: a spike of presynaptic neuron `j` at time `t` is a Dirac input of
    `weights[l][:, j]` at `t` (for `snnx.CuBaLIF` a jump of the synaptic current). Every
    spike time is exact and differentiable.

    **Arguments:**

    - `neurons`: one neuron per layer (1-D populations).
    - `weights`: one matrix per layer, shape `(n_out, n_in)`; `weights[l + 1]` has one
        column per neuron of layer `l`.
    - `input_spikes`: `(times (K,), channels (K,))` of the input spikes, in any order
        (they are sorted by time); channels are ints in `[0, n_in)`. Pad with `inf` times
        (any channel).
    - `t1`: end time. `max_spikes`: an int, or one int per layer (static bounds).
    - `**kwargs`: passed to `simulate` (`t0`, `solver`, `dt0`, `stepsize_controller`,
        `root_finder`, ...).

    **Returns:**

    A list with the `Solution` of every layer.

    **Raises:**

    `ValueError` for mismatched lengths or shapes of `neurons`, `weights`, `max_spikes`
    and `input_spikes`, or an input channel outside `[0, n_in)`; `TypeError` for
    non-integer channels; and everything `simulate` raises.
    """
    if len(neurons) != len(weights):
        raise ValueError(
            f"`neurons` and `weights` need one entry per layer, got {len(neurons)} and "
            f"{len(weights)}."
        )
    if isinstance(max_spikes, (list, tuple)):
        if len(max_spikes) != len(neurons):
            raise ValueError(
                f"`max_spikes` needs one bound per layer ({len(neurons)}), got "
                f"{len(max_spikes)}: pass an int for all layers or one int per layer."
            )
        bounds = [check_bound(f"max_spikes[{i}]", b) for i, b in enumerate(max_spikes)]
    else:
        bounds = [check_bound("max_spikes", max_spikes)] * len(neurons)
    ws = [jnp.asarray(w) for w in weights]
    for layer, w in enumerate(ws):
        if w.ndim != 2:
            raise ValueError(f"`weights[{layer}]` must be a matrix (n_out, n_in), got {w.shape}.")
        if layer > 0 and w.shape[1] != ws[layer - 1].shape[0]:
            raise ValueError(
                f"`weights[{layer}]` has {w.shape[1]} input columns but layer {layer - 1} has "
                f"{ws[layer - 1].shape[0]} neurons (`weights[{layer - 1}]` has shape "
                f"{ws[layer - 1].shape}): give `weights[{layer}]` the shape "
                f"({w.shape[0]}, {ws[layer - 1].shape[0]})."
            )
    times, channels = input_spikes
    times, channels = jnp.asarray(times, float), jnp.asarray(channels)
    if times.ndim != 1 or channels.shape != times.shape:
        raise ValueError(
            f"`input_spikes` must be `(times (K,), channels (K,))`, got shapes {times.shape} "
            f"and {channels.shape}."
        )
    check_input_times(input_spikes[0])
    check_channels(input_spikes[1], input_spikes[0], ws[0].shape[1])
    n_in = ws[0].shape[1]
    outside = jnp.isfinite(times) & ((channels < 0) | (channels >= n_in))
    channels = eqx.error_if(channels, jnp.any(outside), _BAD_CHANNEL)
    sols = []
    for neuron, w, bound in zip(neurons, ws, bounds):
        valid = jnp.isfinite(times)
        in_w = jnp.where(valid[:, None], w.T[jnp.clip(channels, 0, w.shape[1] - 1)], 0.0)
        sol = simulate(neuron, 0.0, shape=(w.shape[0],), t1=t1, max_spikes=bound,
                       input_spikes=(times, in_w), **kwargs)
        sols.append(sol)
        times, channels = sol.event_times, sol.event_neurons
    return sols
