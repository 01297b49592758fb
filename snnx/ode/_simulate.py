"""Event-driven simulation of a neuron population in continuous time (diffrax)."""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, PyTree

from ..neurons import AbstractContinuousNeuron
from ._checks import check_bound, check_finite, check_input_times, check_times, concrete
from ._events import _Carry, _count_rest, _make_advance
from ._root import _default_root_finder


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


class _Constant(eqx.Module):
    # A Module, not a closure, so that `filter_jit` traces the value and reuses the compiled
    # simulation for every current of the same shape.
    value: Array

    def __call__(self, t):
        return self.value


class _Piecewise(eqx.Module):
    grid: Array
    values: Array

    def __call__(self, t):
        # The value of the last step that started at or before t (held over the step).
        k = jnp.searchsorted(self.grid, t, side="right") - 1
        return self.values[jnp.clip(k, 0, self.grid.shape[0] - 1)]


def _broadcasts(value_shape, shape) -> bool:
    try:
        return jnp.broadcast_shapes(value_shape, shape) == shape
    except ValueError:
        return False


def _as_input_fn(current, shape):
    """A function t -> input of `shape`, from a callable, a constant, or a (ts, values) grid."""
    if callable(current):
        return current
    if isinstance(current, tuple) and len(current) == 2:
        grid, values = (jnp.asarray(a, float) for a in current)
        if grid.ndim != 1 or values.shape[:1] != grid.shape or not _broadcasts(
            values.shape[1:], shape
        ):
            raise ValueError(
                "`current` given as `(ts, values)` must have `ts` of shape (K,) (step start "
                f"times, increasing) and `values` of shape (K, *{shape}); got {grid.shape} "
                f"and {values.shape}."
            )
        g = concrete(current[0])
        if g is not None and np.any(np.diff(g) < 0):
            raise ValueError(
                "`current` given as `(ts, values)` needs increasing step times `ts`: sort "
                "them, with `values` in the same order."
            )
        check_finite("current", current[0], "the step times of a piecewise input")
        check_finite("current", current[1], "the values of a piecewise input")
        return _Piecewise(grid, jnp.broadcast_to(values, grid.shape + shape))
    value = jnp.asarray(current, float)
    if not _broadcasts(value.shape, shape):
        raise ValueError(
            f"`current` of shape {value.shape} does not broadcast to the population shape "
            f"{shape}: give a scalar, one value per neuron, a function `t -> x` or a "
            f"`(ts, values)` pair."
        )
    check_finite("current", value, "the constant input current")
    return _Constant(jnp.broadcast_to(value, shape))


_BAD_TIMES = "snnx.ode: `t0` and `t1` must be finite with `t1 > t0`."
_BAD_INPUT = (
    "snnx.ode: `input_spikes` has NaN or -inf times or non-finite weights: give finite "
    "values and pad unused entries with `inf` times."
)
_BAD_START = (
    "snnx.ode: the vector field is non-finite at `t0`: check that `current`, `state0` and "
    "the neuron's parameters are finite."
)


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
    root_finder: optx.AbstractRootFinder | None = None,
    root_tol: float | None = None,
) -> Solution:
    r"""Simulate a neuron population in continuous time with exact spike times.

    Between spikes diffrax integrates `neuron.vector_field`; a spike is the first upward
    zero crossing of `neuron.spike_condition` (located by `root_finder` on the solver's
    dense output, inside the step where the sign changed), after which `neuron.reset` is
    applied and integration continues. The loop is a fixed-length `lax.scan` over events,
    so everything is differentiable (spike times with respect to weights, time constants,
    input currents and input spike times).

    The precision is JAX's default float: float32, or float64 under
    `jax.config.update("jax_enable_x64", True)`. The defaults work in both.

    **Arguments:**

    - `neuron`: an `snnx.AbstractContinuousNeuron` (built-in or your own).
    - `current`: the input current: a constant (scalar or per neuron), a function `t -> x`,
        or a piecewise-constant `(ts, values)` pair (value `values[k]` from `ts[k]` on).
    - `state0`: initial state; default `neuron.init_state(shape)`.
    - `t1`: end time, finite (`t0` is the start, default 0), in the neuron's time unit.
    - `max_spikes`: a static bound on the number of output spikes of the whole population.
        Spikes beyond it are not simulated; `overflow` and `n_dropped` report them.
    - `shape`: the population shape, needed when `state0` is not given.
    - `input_spikes`: `(times (K,), weights (K, *shape))`: Dirac inputs, in any order (they
        are sorted by time); input `k` adds `weights[k]` times the effect of a unit input
        impulse (for `CuBaLIF`, a jump of the synaptic current). Pad with `inf` times.
    - `solver`: a diffrax solver; default `diffrax.Tsit5()` with a PID controller. Fixed-step
        solvers (`diffrax.Euler()`, `diffrax.Heun()`) need `dt0`.
    - `dt0`: initial (adaptive) or fixed step size.
    - `stepsize_controller`: default `PIDController(rtol=1e-6, atol=1e-6)` for adaptive
        solvers (in float32 too: the bracketed root finder, not the step, was what failed
        there), `ConstantStepSize()` otherwise.
    - `save_ts`: times at which to also return the state (dense traces), or None.
    - `max_steps`: solver steps allowed between two events.
    - `root_finder`: the spike-time root finder, any `optimistix.AbstractRootFinder`; default
        `snnx.ode.Chandrupatla()`, bracketed (it cannot diverge or stall), with tolerances
        that follow the dtype. `optimistix.Newton(rtol, atol)` is faster per iteration but
        may diverge or stall in float32.
    - `root_tol`: shorthand for `root_finder=snnx.ode.Chandrupatla(rtol=root_tol,
        atol=root_tol)`.

    **Returns:**

    A `snnx.ode.Solution`.

    **Raises:**

    `TypeError` if the neuron lacks a continuous-time method or `root_finder` is not a root
    finder; `ValueError` for a bad `max_spikes` or `max_steps`, `t1 <= t0`, a non-finite
    `t0`/`t1`/`current`/`state0`/`input_spikes`, a fixed-step solver without `dt0`, or bad
    input shapes. Under `jit` the value checks raise `eqx.EquinoxRuntimeError` (also when
    the solver fails, or a `reset` does not bring the neuron below threshold).
    """
    check_continuous(neuron)
    max_spikes = check_bound("max_spikes", max_spikes)
    max_steps = check_bound("max_steps", max_steps)
    check_times(t0, t1)
    root_finder = _default_root_finder(root_finder, root_tol)
    if state0 is None:
        if shape is None:
            raise ValueError("Give `shape` (the population shape) or an initial `state0`.")
        state0 = neuron.init_state(shape)
    else:
        check_finite("state0", state0, "the initial state")
    # Integrate in JAX's default float precision (float64 under `jax_enable_x64`).
    dtype = jnp.result_type(float)
    state0 = jax.tree.map(lambda a: jnp.asarray(a, dtype), state0)
    pop_shape = tuple(jnp.shape(neuron.spike_condition(state0)))
    n = int(jnp.size(neuron.spike_condition(state0)))
    x_fn = _as_input_fn(current, pop_shape)
    if solver is None:
        solver = diffrax.Tsit5()
    if not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(
            f"`solver` must be a diffrax solver such as `diffrax.Tsit5()`, got "
            f"{type(solver).__name__}."
        )
    if stepsize_controller is None:
        if isinstance(solver, diffrax.AbstractAdaptiveSolver):
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
        check_input_times(input_spikes[0])
        check_finite("input_spikes", input_spikes[1], "the weights of the input spikes")
    if isinstance(current, tuple) and len(current) == 2 and not callable(current):
        # Restart the solver at every discontinuity of a piecewise-constant input: its step
        # times enter the event loop as input spikes of weight zero.
        grid = jnp.asarray(current[0], float)
        in_times = jnp.concatenate([in_times, grid])
        in_weights = jnp.concatenate([in_weights, jnp.zeros((grid.shape[0],) + pop_shape)])
    # The event loop consumes inputs in order; a stable sort keeps simultaneous ones as given.
    order = jnp.argsort(in_times, stable=True)
    in_times, in_weights = in_times[order], in_weights[order]
    if save_ts is not None:
        save_ts = jnp.asarray(save_ts, float)
        if save_ts.ndim != 1:
            raise ValueError(f"`save_ts` must be a 1-D array of times, got shape {save_ts.shape}.")
        check_finite("save_ts", save_ts, "the times of the dense trace")
    return _simulate_core(
        neuron, x_fn, state0, in_times, in_weights, jnp.asarray(t0, float),
        jnp.asarray(t1, float), solver, stepsize_controller, dt0, max_steps, root_finder,
        max_spikes, save_ts, pop_shape, n,
    )


@eqx.filter_jit
def _simulate_core(neuron, x_fn, state0, in_times, in_weights, t0, t1, solver,
                   stepsize_controller, dt0, max_steps, root_finder, max_spikes, save_ts,
                   pop_shape, n):
    # Checks of traced values (under the user's `jit`/`vmap`); free when they pass.
    t1 = eqx.error_if(t1, ~(jnp.isfinite(t0) & jnp.isfinite(t1) & (t1 > t0)), _BAD_TIMES)
    bad_input = jnp.any(jnp.isnan(in_times) | (in_times == -jnp.inf)) | ~jnp.all(
        jnp.isfinite(in_weights)
    )
    in_times = eqx.error_if(in_times, bad_input, _BAD_INPUT)
    field0 = neuron.vector_field(t0, state0, x_fn(t0))
    finite0 = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(field0)]))
    t0 = eqx.error_if(t0, ~finite0, _BAD_START)
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
