"""Event-driven simulation of a neuron population in continuous time (diffrax)."""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, PyTree

from ..neurons import AbstractContinuousNeuron


def check_continuous(neuron) -> None:
    """Raise a clear error if `neuron` is not an `snnx.AbstractContinuousNeuron`."""
    if not isinstance(neuron, AbstractContinuousNeuron):
        raise TypeError(
            f"{type(neuron).__name__} has no continuous-time form: it lacks `vector_field`, "
            f"`spike_condition` and `reset` as an `snnx.AbstractContinuousNeuron`. Subclass "
            f"`snnx.AbstractContinuousNeuron` and implement `vector_field(t, state, x)`, "
            f"`spike_condition(state)` and `reset(state, spiked)` to simulate it with "
            f"`snnx.ode`."
        )


class Solution(NamedTuple):
    """Result of `snnx.ode.simulate`.

    - `spike_times`: `(n_neurons, max_spikes)`, each neuron's spike times in order, padded
        with `inf`.
    - `spike_counts`: `(n_neurons,)` spikes per neuron within `[t0, t1]` (kept spikes only).
    - `event_times`, `event_neurons`: the population's spikes in time order, `(max_spikes,)`,
        padded with `inf` / `-1`.
    - `overflow`: True if more spikes would have occurred than `max_spikes` allows.
    - `n_dropped`: how many spikes were cut off by the bound (counted without gradient).
    - `final_state`: the state at `t1`.
    - `ts`, `states`: dense traces on `save_ts` (None if not requested).
    """

    spike_times: Array
    spike_counts: Array
    event_times: Array
    event_neurons: Array
    overflow: Array
    n_dropped: Array
    final_state: PyTree
    ts: Array | None
    states: PyTree | None


def _as_input_fn(current, shape):
    """A function t -> input of `shape`, from a callable, a constant, or a (ts, values) grid."""
    if callable(current):
        return current
    if isinstance(current, tuple) and len(current) == 2:
        grid, values = (jnp.asarray(a) for a in current)
        if grid.ndim != 1 or values.shape[:1] != grid.shape:
            raise ValueError(
                "`current` given as `(ts, values)` must have `ts` of shape (K,) (step start "
                f"times, increasing) and `values` of shape (K, *shape); got {grid.shape} and "
                f"{values.shape}."
            )

        def piecewise(t):
            # The value of the last step that started at or before t (held over the step).
            k = jnp.clip(jnp.searchsorted(grid, t, side="right") - 1, 0, grid.shape[0] - 1)
            return values[k]

        return piecewise
    value = jnp.broadcast_to(jnp.asarray(current, float), shape)
    return lambda t: value


def _input_jump(neuron, t, state, x_fn, weight):
    """State jump caused by a Dirac input `weight * delta(t)`: `weight * d(field)/dx`.

    Exact for every neuron whose vector field is affine in its input (all built-in ones).
    """
    x0 = x_fn(t)
    _, jump = jax.jvp(lambda x: neuron.vector_field(t, state, x), (x0,), (weight,))
    return jax.tree.map(jnp.add, state, jump)


class _Carry(NamedTuple):
    t: Array
    state: PyTree
    k: Array  # index of the next input spike
    done: Array


def _flat_condition(neuron, state):
    return jnp.ravel(neuron.spike_condition(state))


def _make_advance(neuron, x_fn, in_times, in_weights, t1, solver, controller, dt0, max_steps,
                  root_finder):
    """One event of the simulation: the next output spike, the next input spike, or t1."""
    term = diffrax.ODETerm(lambda t, y, args: neuron.vector_field(t, y, x_fn(t)))
    event = diffrax.Event(
        lambda t, y, args, **kw: jnp.max(_flat_condition(neuron, y)),
        root_finder=root_finder,
        direction=True,
    )
    n_in = in_times.shape[0]

    def integrate(t_start, t_stop, state):
        sol = diffrax.diffeqsolve(
            term, solver, t_start, t_stop, dt0, state,
            stepsize_controller=controller, event=event, max_steps=max_steps,
            saveat=diffrax.SaveAt(t1=True), adjoint=diffrax.RecursiveCheckpointAdjoint(),
            throw=True,
        )
        fired = jnp.asarray(sol.event_mask)
        return sol.ts[-1], jax.tree.map(lambda a: a[-1], sol.ys), fired

    def spike_now(state):
        cond = _flat_condition(neuron, state)
        mask = jax.nn.one_hot(jnp.argmax(cond), cond.shape[0], dtype=bool)
        shape = jnp.shape(neuron.spike_condition(state))
        return neuron.reset(state, mask.reshape(shape)), jnp.argmax(cond)

    def advance(c: _Carry):
        # 0. A neuron already over threshold (several can be lifted at once by one input, or
        #    cross together) spikes now, one per iteration, before any integration.
        pending = (~c.done) & (jnp.max(_flat_condition(neuron, c.state)) > 0)
        y_now, idx_now = spike_now(c.state)
        # 1. Otherwise integrate to the next input spike (or t1), stopping at an output spike.
        t_in = jnp.where(c.k < n_in, in_times[jnp.minimum(c.k, n_in - 1)], jnp.inf)
        t_stop = jnp.minimum(t_in, t1)
        active = (~c.done) & (~pending) & (t_stop > c.t)
        t_end, y_end, fired = jax.lax.cond(
            active,
            lambda: integrate(c.t, jnp.where(active, t_stop, c.t + 1e-6 * (1 + jnp.abs(c.t))),
                              c.state),
            lambda: (c.t, c.state, jnp.array(False)),
        )
        fired = fired & active
        y_reset, idx_out = spike_now(y_end)
        # 2. The segment reached an input spike: apply its jump (a neuron lifted over
        #    threshold spikes in the next iteration, at this same time).
        at_input = (~c.done) & (~pending) & (~fired) & (t_stop >= t_in) & (c.k < n_in)
        w = in_weights[jnp.minimum(c.k, n_in - 1)]
        y_jump = _input_jump(neuron, t_end, y_end, x_fn, w)

        def pick(now, reset, jump, end):
            return jnp.where(pending, now, jnp.where(fired, reset, jnp.where(at_input, jump, end)))

        state = jax.tree.map(pick, y_now, y_reset, y_jump, y_end)
        spiked = pending | fired
        idx = jnp.where(pending, idx_now, idx_out)
        t_event = jnp.where(pending, c.t, t_end)
        done = c.done | ((~pending) & (~fired) & (~at_input))
        new = _Carry(t_event, state, c.k + at_input.astype(c.k.dtype), done)
        return new, (spiked, t_event, idx)

    return advance


def simulate(
    neuron,
    current=0.0,
    state0: PyTree | None = None,
    *,
    t1: float,
    max_spikes: int,
    t0: float = 0.0,
    shape: int | tuple[int, ...] | None = None,
    input_spikes: tuple[Array, Array] | None = None,
    solver: diffrax.AbstractSolver | None = None,
    dt0: float | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    save_ts: Array | None = None,
    max_steps: int = 4096,
    root_tol: float = 1e-6,
) -> Solution:
    r"""Simulate a neuron population in continuous time with exact spike times.

    Between spikes diffrax integrates `neuron.vector_field`; a spike is the first upward
    zero crossing of `neuron.spike_condition` (found by Newton's method on the solver's
    dense output), after which `neuron.reset` is applied and integration continues. The
    loop is a fixed-length `lax.scan` over events, so everything is differentiable (spike
    times with respect to weights, time constants, input currents and input spike times).

    **Arguments:**

    - `neuron`: any neuron with `vector_field(t, state, x)`, `spike_condition(state)` and
        `reset(state, spiked)` (built-in or your own).
    - `current`: the input current: a constant (scalar or per neuron), a function `t -> x`,
        or a piecewise-constant `(ts, values)` pair (value `values[k]` from `ts[k]` on).
    - `state0`: initial state; default `neuron.init_state(shape)`.
    - `t1`: end time (`t0` is the start, default 0), in the neuron's time unit.
    - `max_spikes`: a static bound on the number of output spikes of the whole population.
        Spikes beyond it are not simulated; `overflow` and `n_dropped` report them.
    - `shape`: the population shape, needed when `state0` is not given.
    - `input_spikes`: `(times (K,), weights (K, *shape))`: Dirac inputs at increasing
        times; input `k` adds `weights[k]` times the effect of a unit input impulse (for
        `CuBaLIF`, a jump of the synaptic current). Pad with `inf` times.
    - `solver`: a diffrax solver; default `diffrax.Tsit5()` with a PID controller. Fixed-step
        solvers (`diffrax.Euler()`, `diffrax.Heun()`) need `dt0`.
    - `dt0`: initial (adaptive) or fixed step size.
    - `stepsize_controller`: default `PIDController(rtol=1e-6, atol=1e-6)` for adaptive
        solvers, `ConstantStepSize()` otherwise.
    - `save_ts`: times at which to also return the state (dense traces), or None.
    - `max_steps`: solver steps allowed between two events.
    - `root_tol`: tolerance of the spike-time root finder.

    **Returns:**

    A `snnx.ode.Solution`.

    **Raises:**

    `TypeError` if the neuron lacks a continuous-time method (naming it); `ValueError` for a
    bad `max_spikes`, `t1 <= t0`, a fixed-step solver without `dt0`, or bad input shapes.
    """
    check_continuous(neuron)
    if not (isinstance(max_spikes, int) and max_spikes >= 1):
        raise ValueError(
            f"`max_spikes` must be a positive int (a static bound), got {max_spikes!r}."
        )
    if isinstance(t1, (int, float)) and isinstance(t0, (int, float)) and not t1 > t0:
        raise ValueError(f"`t1` must be greater than `t0`, got t0={t0}, t1={t1}.")
    if state0 is None:
        if shape is None:
            raise ValueError("Give `shape` (the population shape) or an initial `state0`.")
        state0 = neuron.init_state(shape)
    # Integrate in JAX's default float precision (float64 under `jax_enable_x64`).
    state0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.result_type(float)), state0)
    pop_shape = tuple(jnp.shape(neuron.spike_condition(state0)))
    n = int(jnp.size(neuron.spike_condition(state0)))
    x_fn = _as_input_fn(current, pop_shape)
    if solver is None:
        solver = diffrax.Tsit5()
    adaptive = isinstance(solver, diffrax.AbstractAdaptiveSolver)
    if stepsize_controller is None:
        if adaptive:
            stepsize_controller = diffrax.PIDController(rtol=1e-6, atol=1e-6)
        else:
            if dt0 is None:
                raise ValueError(
                    f"The fixed-step solver {type(solver).__name__} needs `dt0`, the step size."
                )
            stepsize_controller = diffrax.ConstantStepSize()
    if input_spikes is None:
        in_times = jnp.full((1,), jnp.inf)
        in_weights = jnp.zeros((1,) + pop_shape)
    else:
        in_times, in_weights = (jnp.asarray(a, float) for a in input_spikes)
        if in_times.ndim != 1 or in_weights.shape != in_times.shape + pop_shape:
            raise ValueError(
                f"`input_spikes` must be `(times (K,), weights (K, *{pop_shape}))`, got shapes "
                f"{in_times.shape} and {in_weights.shape}."
            )
    if isinstance(current, tuple) and len(current) == 2 and not callable(current):
        # Restart the solver at every discontinuity of a piecewise-constant input: its step
        # times enter the event loop as input spikes of weight zero.
        grid = jnp.asarray(current[0], float)
        in_times = jnp.concatenate([in_times, grid])
        in_weights = jnp.concatenate([in_weights, jnp.zeros((grid.shape[0],) + pop_shape)])
        order = jnp.argsort(in_times)
        in_times, in_weights = in_times[order], in_weights[order]
    return _simulate_core(
        neuron, x_fn, state0, in_times, in_weights, jnp.asarray(t0, float),
        jnp.asarray(t1, float), solver, stepsize_controller, dt0, max_steps, root_tol,
        max_spikes, None if save_ts is None else jnp.asarray(save_ts, float), pop_shape, n,
    )


@eqx.filter_jit
def _simulate_core(neuron, x_fn, state0, in_times, in_weights, t0, t1, solver,
                   stepsize_controller, dt0, max_steps, root_tol, max_spikes, save_ts,
                   pop_shape, n):
    root_finder = optx.Newton(rtol=root_tol, atol=root_tol)
    advance = _make_advance(neuron, x_fn, in_times, in_weights, t1, solver,
                            stepsize_controller, dt0, max_steps, root_finder)
    n_events = max_spikes + in_times.shape[0]
    start = _Carry(t0, state0, jnp.array(0), jnp.array(False))

    def body(c, _):
        new, (spiked, t, idx) = advance(c)
        return new, (spiked, t, idx, new.t, new.state)

    # Each iteration consumes one output or one input spike (or reaches t1), so n_events
    # iterations reach t1 unless more than max_spikes output spikes occur.
    end, (spiked, ts_ev, idx, t_after, s_after) = jax.lax.scan(body, start, length=n_events)
    out_rank = jnp.cumsum(spiked) - 1
    keep = spiked & (out_rank < max_spikes)
    slot = jnp.where(keep, out_rank, max_spikes)
    event_times = jnp.full((max_spikes,), jnp.inf).at[slot].set(ts_ev, mode="drop")
    event_neurons = jnp.full((max_spikes,), -1).at[slot].set(idx, mode="drop")
    onehot = jax.nn.one_hot(jnp.where(keep, idx, n), n, dtype=jnp.int32)
    per_neuron_rank = jnp.cumsum(onehot, axis=0) - 1
    rank = jnp.take_along_axis(per_neuron_rank, jnp.where(keep, idx, 0)[:, None], 1)[:, 0]
    spike_times = jnp.full((n, max_spikes), jnp.inf).at[
        jnp.where(keep, idx, n), jnp.where(keep, rank, max_spikes)
    ].set(ts_ev, mode="drop")
    spike_counts = onehot.sum(0)
    # More output spikes than the bound: count the rest without gradient (never silent).
    kept_total = keep.sum()
    n_dropped = spiked.sum() - kept_total + _count_rest(advance, jax.lax.stop_gradient(end))
    overflow = n_dropped > 0
    final_state = end.state
    ts_out, states_out = None, None
    if save_ts is not None:
        ts_out = save_ts
        states_out = _traces(neuron, x_fn, solver, stepsize_controller, dt0, max_steps, start,
                             t_after, s_after, ts_out)
    return Solution(
        spike_times.reshape(pop_shape + (max_spikes,)), spike_counts.reshape(pop_shape),
        event_times, event_neurons, overflow, n_dropped, final_state, ts_out, states_out,
    )


def _count_rest(advance, carry, limit: int = 100_000):
    def cond(cs):
        c, count, i = cs
        return (~c.done) & (i < limit)

    def step(cs):
        c, count, i = cs
        new, (spiked, _, _) = advance(c)
        return new, count + spiked.astype(count.dtype), i + 1

    _, count, _ = jax.lax.while_loop(cond, step, (carry, jnp.array(0), jnp.array(0)))
    return count


def _traces(neuron, x_fn, solver, controller, dt0, max_steps, start, t_after, s_after, save_ts):
    """States at `save_ts`: integrate from the last event at or before each time."""
    starts_t = jnp.concatenate([start.t[None], t_after])
    starts_s = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), start.state, s_after)
    term = diffrax.ODETerm(lambda t, y, args: neuron.vector_field(t, y, x_fn(t)))

    def one(s):
        k = jnp.clip(jnp.searchsorted(starts_t, s, side="right") - 1, 0, starts_t.shape[0] - 1)
        t_a = starts_t[k]
        y_a = jax.tree.map(lambda a: a[k], starts_s)
        t_b = jnp.maximum(s, t_a + 1e-9)
        sol = diffrax.diffeqsolve(
            term, solver, t_a, t_b, dt0, y_a, stepsize_controller=controller,
            max_steps=max_steps, saveat=diffrax.SaveAt(t1=True),
        )
        y = jax.tree.map(lambda a: a[-1], sol.ys)
        return jax.tree.map(lambda a, b: jnp.where(s > t_a, a, b), y, y_a)

    return jax.vmap(one)(save_ts)


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
    - `weights`: one matrix per layer, shape `(n_out, n_in)`.
    - `input_spikes`: `(times (K,), channels (K,))` of the input spikes, in increasing time
        (pad with `inf` times and any channel).
    - `t1`: end time. `max_spikes`: an int, or one int per layer (static bounds).
    - `**kwargs`: passed to `simulate` (`t0`, `solver`, `dt0`, `stepsize_controller`, ...).

    **Returns:**

    A list with the `Solution` of every layer.
    """
    if len(neurons) != len(weights):
        raise ValueError(
            f"`neurons` and `weights` need one entry per layer, got {len(neurons)} and "
            f"{len(weights)}."
        )
    bounds = [max_spikes] * len(neurons) if isinstance(max_spikes, int) else list(max_spikes)
    times, channels = (jnp.asarray(a) for a in input_spikes)
    sols = []
    for layer, (neuron, w, bound) in enumerate(zip(neurons, weights, bounds)):
        w = jnp.asarray(w)
        if w.ndim != 2:
            raise ValueError(f"`weights[{layer}]` must be a matrix (n_out, n_in), got {w.shape}.")
        valid = (channels >= 0) & jnp.isfinite(times)
        in_w = jnp.where(valid[:, None], w.T[jnp.clip(channels, 0, w.shape[1] - 1)], 0.0)
        sol = simulate(neuron, 0.0, shape=(w.shape[0],), t1=t1, max_spikes=bound,
                       input_spikes=(times, in_w), **kwargs)
        sols.append(sol)
        times, channels = sol.event_times, sol.event_neurons
    return sols
