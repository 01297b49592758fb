"""`snnx.ode.simulate` over many inputs: vmapped chunks, a host loop that shows progress."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from ..train._progress import AbstractLoopMeter, as_loop_meter
from ._checks import check_bound
from ._simulate import Solution, check_continuous, simulate


def _leading(name, tree) -> int:
    sizes = {int(jnp.shape(a)[0]) if jnp.ndim(a) else None for a in jax.tree.leaves(tree)}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"`{name}` must carry a leading sample axis `(N, ...)` on every array (one input "
            f"per simulation), got shapes {[jnp.shape(a) for a in jax.tree.leaves(tree)]}."
        )
    return sizes.pop()


@eqx.filter_jit
def _chunk(neuron, args, simulate_kwargs):
    # Module level, so that repeated calls with the same shapes reuse one compiled program.
    return jax.vmap(lambda a: simulate(neuron, **a, **simulate_kwargs))(args)


def simulate_batch(
    neuron,
    current: Array | None = None,
    state0: PyTree | None = None,
    *,
    input_spikes: tuple[Array, Array] | None = None,
    batch_size: int = 64,
    progress: bool | AbstractLoopMeter = False,
    **simulate_kwargs,
) -> Solution:
    """Run `snnx.ode.simulate` for many inputs: `jax.vmap` over chunks of `batch_size`, one
    compiled program, a host loop over the chunks that reports progress.

    ```python
    sols = snnx.ode.simulate_batch(snnx.LIF(tau=10.0), currents, shape=(1,), t1=100.0,
                                   max_spikes=20, progress=True)   # currents: (N, 1)
    sols.spike_times                                               # (N, 1, 20)
    ```

    **Arguments:**

    - `neuron`: an `snnx.AbstractContinuousNeuron`.
    - `current`: constant input currents with a leading sample axis, `(N, *shape)` (or
        `(N,)` for one value per simulation), or None for no current.
    - `state0`: initial states with a leading sample axis, or None (rest).
    - `input_spikes`: `(times (N, K), weights (N, K, *shape))`, or None.
    - `batch_size`: simulations per vmapped chunk (the last chunk is padded to it, so one
        program serves every chunk). Default 64.
    - `progress`: False (default) shows nothing, True a tqdm bar over the inputs, or an
        `snnx.train.AbstractLoopMeter` (told once per chunk with its number of inputs), as
        in `snnx.fit`.
    - `**simulate_kwargs`: everything else of `snnx.ode.simulate` (`t1`, `max_spikes`,
        `shape`, `solver`, ...), shared by all simulations.

    **Returns:**

    A `snnx.ode.Solution` whose fields have a leading axis `N`. If any simulation hit
    `max_spikes`, a warning says how many and how many spikes were dropped (`overflow` and
    `n_dropped` hold them per simulation).

    **Raises:**

    `ValueError` when no batched input is given, the leading axes differ, or `batch_size` is
    not a positive int; `TypeError` for a neuron without continuous-time form or a
    callable/piecewise `current` (batch those with `jax.vmap(snnx.ode.simulate)` yourself);
    and whatever `simulate` raises.
    """
    check_continuous(neuron)
    batch_size = check_bound("batch_size", batch_size)
    if callable(current) or isinstance(current, tuple):
        raise TypeError(
            "`current` of `simulate_batch` must be an array of constant currents `(N, ...)`; "
            "for functions of time or `(ts, values)` grids, vmap `snnx.ode.simulate` yourself."
        )
    batched = {}
    for name, value in (("current", current), ("state0", state0),
                        ("input_spikes", input_spikes)):
        if value is not None:
            value = jax.tree.map(jnp.asarray, tuple(value) if name == "input_spikes" else value)
            batched[name] = (value, _leading(name, value))
    if not batched:
        raise ValueError(
            "`simulate_batch` needs at least one of `current`, `state0`, `input_spikes` with a "
            "leading sample axis; for one simulation call `snnx.ode.simulate`."
        )
    sizes = {name: n for name, (_, n) in batched.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the inputs have different numbers of samples: {sizes}.")
    n = next(iter(sizes.values()))
    args = {name: value for name, (value, _) in batched.items()}
    b = min(batch_size, n)

    meter = as_loop_meter(progress)
    meter.loop_start(n, "simulating")
    parts = []
    try:
        for s in range(0, n, b):
            m = min(b, n - s)
            # Pad the last chunk with copies of its first input: one shape, one program.
            part = jax.tree.map(
                lambda a: a[s:s + m] if m == b else jnp.concatenate(
                    [a[s:s + m], jnp.repeat(a[s:s + 1], b - m, axis=0)]), args)
            sol = jax.block_until_ready(_chunk(neuron, part, simulate_kwargs))
            parts.append(jax.tree.map(lambda a: a[:m], sol))
            meter.loop_update(m)
    finally:
        meter.loop_end()
    out = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
    dropped = np.asarray(out.n_dropped)
    if dropped.any():
        warnings.warn(
            f"snnx.ode.simulate_batch: {int((dropped > 0).sum())} of {n} simulations had more "
            f"spikes than `max_spikes` allows; {int(dropped.sum())} spikes were dropped "
            f"(`overflow`/`n_dropped` say which). Raise `max_spikes` to keep them.",
            stacklevel=2,
        )
    return out
