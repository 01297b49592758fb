"""The event loop of `snnx.ode`: one output spike, one input spike, or the end per step."""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree


def _input_jump(neuron, t, state, x_fn, weight):
    """State jump caused by a Dirac input `weight * delta(t)`: `weight * d(field)/dx`.

    Exact for every neuron whose vector field is affine in its input (all built-in ones).
    """
    x0 = x_fn(t)
    _, jump = jax.jvp(lambda x: neuron.vector_field(t, state, x), (x0,), (weight,))
    return jax.tree.map(jnp.add, state, jump)


_SOLVER_FAILED = (
    "snnx.ode: the ODE solver failed between two events: it reached `max_steps` solver steps "
    "or the state became non-finite. Check that `current` (also a function's values), "
    "`state0`, the `input_spikes` weights and the neuron's parameters are finite; if they "
    "are, the dynamics need more steps: raise `max_steps` or loosen `stepsize_controller`."
)
_RESET_STUCK = (
    "snnx.ode: `neuron.reset` did not lower the spike condition of the neuron that spiked, "
    "so it would spike again at the same time forever. In continuous time a reset must "
    "bring the state below threshold: use `reset_mode='subtract'` or `'to_value'` (not "
    "`'none'`), or fix `reset` of your `AbstractContinuousNeuron`."
)
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
            throw=False,
        )
        ok = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.event_occurred
        )
        t_end = eqx.error_if(sol.ts[-1], ~ok, _SOLVER_FAILED)
        fired = jnp.asarray(sol.event_mask)
        return t_end, jax.tree.map(lambda a: a[-1], sol.ys), fired

    def spike_now(state):
        cond = _flat_condition(neuron, state)
        idx = jnp.argmax(cond)
        mask = jax.nn.one_hot(idx, cond.shape[0], dtype=bool)
        shape = jnp.shape(neuron.spike_condition(state))
        reset = neuron.reset(state, mask.reshape(shape))
        # A reset that does not lower the condition would spike again at once, forever.
        lowered = _flat_condition(neuron, reset)[idx] < cond[idx]
        return reset, idx, lowered

    def advance(c: _Carry):
        # 0. A neuron already over threshold (several can be lifted at once by one input, or
        #    cross together) spikes now, one per iteration, before any integration.
        pending = (~c.done) & (jnp.max(_flat_condition(neuron, c.state)) > 0)
        y_now, idx_now, lowered_now = spike_now(c.state)
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
        y_reset, idx_out, lowered_out = spike_now(y_end)
        # 2. The segment reached an input spike: apply its jump (a neuron lifted over
        #    threshold spikes in the next iteration, at this same time).
        at_input = (~c.done) & (~pending) & (~fired) & (t_stop >= t_in) & (c.k < n_in)
        w = in_weights[jnp.minimum(c.k, n_in - 1)]
        y_jump = _input_jump(neuron, t_end, y_end, x_fn, w)

        def pick(now, reset, jump, end):
            return jnp.where(pending, now, jnp.where(fired, reset, jnp.where(at_input, jump, end)))

        state = jax.tree.map(pick, y_now, y_reset, y_jump, y_end)
        spiked = pending | fired
        stuck = (pending & ~lowered_now) | (fired & ~lowered_out)
        spiked = eqx.error_if(spiked, stuck, _RESET_STUCK)
        idx = jnp.where(pending, idx_now, idx_out)
        t_event = jnp.where(pending, c.t, t_end)
        done = c.done | ((~pending) & (~fired) & (~at_input))
        new = _Carry(t_event, state, c.k + at_input.astype(c.k.dtype), done)
        return new, (spiked, t_event, idx)

    return advance


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
