"""`snnx.ode` in float32 (JAX's default) and on bad input: nothing silent, nothing raw."""

import math
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import snnx
from snnx import ode


def _x64(fn):
    """Run `fn()` with float64 enabled (the float64 reference of a float32 run)."""
    jax.config.update("jax_enable_x64", True)
    try:
        return jax.tree.map(np.asarray, fn())
    finally:
        jax.config.update("jax_enable_x64", False)


def _finite(times):
    times = np.asarray(times)
    return times[np.isfinite(times)]


# LIF(tau=10), constant current 15, 40 time units: failed in float32 before ("maximum number
# of steps was reached in the nonlinear solver"). Shared by several tests to reuse the
# compiled simulation.
LIF = snnx.LIF(tau=10.0, reset_mode="to_value")
PERIOD = 10.0 * math.log(15.0 / 14.0)  # tau ln(I / (I - theta)), r = 1, v_leak = 0


def _lif(current=15.0, **kwargs):
    kwargs = dict(shape=(1,), t1=40.0, max_spikes=64) | kwargs
    return ode.simulate(LIF, current, **kwargs)


def test_lif_float32_matches_closed_form():
    sol = _lif()
    assert sol.spike_times.dtype == jnp.float32
    times = _finite(sol.spike_times[0])
    assert len(times) == int(40.0 // PERIOD) == int(sol.spike_counts[0]) == 57
    # Each spike restarts from v = 0, so errors add up over 57 periods: still < 1e-4.
    np.testing.assert_allclose(times, PERIOD * np.arange(1, 58), rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.diff(times), PERIOD, rtol=0, atol=2e-5)
    assert not bool(sol.overflow)


def test_root_finder_is_a_choice():
    # A finder passed in is used as given; optimistix's bisection finds the same spikes.
    sol = _lif(root_finder=optx.Bisection(rtol=1e-6, atol=1e-5))
    np.testing.assert_allclose(_finite(sol.spike_times[0]), PERIOD * np.arange(1, 58), atol=1e-4)
    with pytest.raises(TypeError, match="`root_finder`"):
        _lif(root_finder="newton")
    with pytest.raises(ValueError, match="`root_finder` or `root_tol`"):
        _lif(root_finder=ode.Chandrupatla(), root_tol=1e-6)
    with pytest.raises(ValueError, match="`rtol`"):
        ode.Chandrupatla(rtol=-1.0)


class AdaptiveState(NamedTuple):
    v: jax.Array
    w: jax.Array


class AdaptiveLIF(snnx.AbstractContinuousNeuron):
    """A user's two-variable neuron: LIF with a spike-triggered adaptation current."""

    tau: float = 10.0
    tau_w: float = 30.0
    b: float = 2.0

    def init_state(self, shape, dtype=jnp.float32):
        return AdaptiveState(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

    def __call__(self, x, state, *, key=None):
        raise NotImplementedError  # continuous time only

    def vector_field(self, t, state, x):
        return AdaptiveState((-state.v + x - state.w) / self.tau, -state.w / self.tau_w)

    def spike_condition(self, state):
        return state.v - 1.0

    def reset(self, state, spiked):
        return AdaptiveState(jnp.where(spiked, 0.0, state.v), state.w + self.b * spiked)


@pytest.mark.parametrize(
    "neuron, current, t1, atol",
    [
        # Izhikevich's upstroke is steep (v' ~ 1e3 mV/ms at 30 mV): times agree closely.
        (snnx.Izhikevich(), 10.0, 200.0, 2e-4),
        (AdaptiveLIF(), 15.0, 40.0, 2e-5),
    ],
    ids=["izhikevich", "two-variable"],
)
def test_float32_matches_float64(neuron, current, t1, atol):
    def run():
        return ode.simulate(neuron, current, shape=(1,), t1=t1, max_spikes=16).spike_times

    t32 = np.asarray(run())
    t64 = _x64(run)
    assert t32.dtype == np.float32 and t64.dtype == np.float64
    assert np.array_equal(np.isfinite(t32), np.isfinite(t64)) and np.isfinite(t32).sum() >= 4
    np.testing.assert_allclose(_finite(t32), _finite(t64), rtol=0, atol=atol)


def test_two_layer_cubalif_chain_float32_matches_float64():
    # Newton's step diverged here in float32; the bracketed default cannot.
    neurons = [snnx.CuBaLIF(2.0, 5.0, v_threshold=0.5, reset_mode="to_value"),
               snnx.CuBaLIF(2.0, 5.0, v_threshold=0.3, reset_mode="to_value")]
    w1 = np.array([[3.0, 0.5, 1.0], [0.5, 2.5, 1.5], [2.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    w2 = np.array([[1.0, 0.8, 1.2, 0.5], [0.3, 1.5, 0.7, 1.1]])
    times = np.array([1.0, 1.5, 2.0, 3.0, 4.5, 5.0, 7.0, 8.0])
    channels = np.array([0, 1, 2, 0, 1, 2, 0, 1])

    def run():
        sols = ode.simulate_layers(neurons, [w1, w2], (times, channels), t1=20.0,
                                   max_spikes=[16, 8])
        return [s.spike_times for s in sols]

    got, ref = [np.asarray(t) for t in run()], _x64(run)
    for t32, t64 in zip(got, ref):
        assert np.array_equal(np.isfinite(t32), np.isfinite(t64))
        np.testing.assert_allclose(_finite(t32), _finite(t64), rtol=0, atol=1e-4)
    assert np.isfinite(got[1]).sum() >= 2


def test_unsorted_input_spikes_are_sorted():
    lif = snnx.LIF(tau=10.0, v_threshold=1.0)
    times = jnp.array([1.0, 3.0, 2.0])
    weights = jnp.array([[6.0], [6.0], [0.0]])
    order = jnp.argsort(times)
    sorted_ = ode.simulate(lif, 0.0, shape=(1,), t1=10.0, max_spikes=2,
                           input_spikes=(times[order], weights[order]))
    unsorted = ode.simulate(lif, 0.0, shape=(1,), t1=10.0, max_spikes=2,
                            input_spikes=(times, weights))
    # Two jumps of 0.6 at t=1 and t=3 cross threshold at the second one.
    assert float(sorted_.spike_times[0, 0]) == pytest.approx(3.0, abs=1e-5)
    assert eqx.tree_equal(unsorted.spike_times, sorted_.spike_times)


def test_traced_bad_values_raise_named_errors():
    # Under `eqx.filter_jit` (under `jax.jit` JAX wraps the same message in a ValueError).
    @eqx.filter_jit
    def first_spike(t1, current, weights):
        inputs = (jnp.array([1.0, jnp.inf]), weights)
        return ode.simulate(LIF, current, shape=(1,), t1=t1, max_spikes=4,
                            input_spikes=inputs).spike_times[0, 0]

    w, c, a = jnp.zeros((2, 1)), jnp.array(15.0), jnp.array
    assert float(first_spike(a(5.0), c, w)) == pytest.approx(PERIOD, abs=2e-5)
    with pytest.raises(eqx.EquinoxRuntimeError, match="`t1`"):
        first_spike(a(jnp.inf), c, w)
    with pytest.raises(eqx.EquinoxRuntimeError, match="`t1`"):
        first_spike(a(-1.0), c, w)
    with pytest.raises(eqx.EquinoxRuntimeError, match="`current`"):
        first_spike(a(5.0), a(jnp.nan), w)
    with pytest.raises(eqx.EquinoxRuntimeError, match="`input_spikes`"):
        first_spike(a(5.0), c, w.at[0, 0].set(jnp.nan))


def test_reset_that_stays_above_threshold_is_refused():
    # reset_mode="none" used to spin to 100,001 dropped spikes at one time point.
    lif = snnx.LIF(tau=10.0, reset_mode="none")
    with pytest.raises(eqx.EquinoxRuntimeError, match="reset_mode='subtract'"):
        ode.simulate(lif, 2.0, shape=(1,), t1=20.0, max_spikes=2)


def test_nan_from_a_current_function_names_the_solver_failure():
    with pytest.raises(eqx.EquinoxRuntimeError, match="`current`.*`max_steps`"):
        _lif(lambda t: jnp.where(t > 2.0, jnp.nan, 15.0) * jnp.ones(1))


def test_bad_arguments_of_simulate():
    def call(**kwargs):
        return _lif(**kwargs)

    cases = [
        (ValueError, "`max_spikes`", dict(max_spikes=-1)),
        (ValueError, "`max_spikes`", dict(max_spikes=True)),
        (ValueError, "`max_spikes`", dict(max_spikes=2.5)),
        (ValueError, "`max_steps`", dict(max_steps=0)),
        (ValueError, "`t1` must be finite", dict(t1=float("inf"))),
        (ValueError, "`t1` must be finite", dict(t1=np.nan)),
        (ValueError, "`t0` must be finite", dict(t0=-np.inf)),
        (ValueError, "`t1` must be greater", dict(t1=np.float32(0.0))),
        (ValueError, "`t1` must be greater", dict(t0=jnp.array(50.0))),
        (ValueError, "`t1` must be a scalar", dict(t1=jnp.ones(2))),
        (ValueError, "`current`", dict(current=np.nan)),
        (ValueError, "`current`", dict(current=jnp.ones(3))),
        (ValueError, "`current`", dict(current=(jnp.array([2.0, 0.0]), jnp.ones((2, 1))))),
        (ValueError, "`current`", dict(current=(jnp.array([0.0, 1.0]), jnp.ones((2, 3))))),
        (ValueError, "`current`", dict(current=(jnp.array([0.0, 1.0]), jnp.full((2, 1), np.inf)))),
        (ValueError, "`state0`",
         dict(state0=snnx.neurons.LIFState(jnp.array([np.nan])), shape=None)),
        (ValueError, "`input_spikes`", dict(input_spikes=(jnp.array([np.nan]), jnp.ones((1, 1))))),
        (ValueError, "`input_spikes`",
         dict(input_spikes=(jnp.array([1.0]), jnp.full((1, 1), np.nan)))),
        (ValueError, "`input_spikes`", dict(input_spikes=(jnp.ones(2), jnp.ones((3, 1))))),
        (ValueError, "`save_ts`", dict(save_ts=jnp.ones((2, 2)))),
        (ValueError, "`save_ts`", dict(save_ts=jnp.array([1.0, np.nan]))),
        (TypeError, "`solver`", dict(solver="tsit5")),
        (ValueError, "`dt0`", dict(solver=diffrax.Euler())),
    ]
    for error, match, kwargs in cases:
        with pytest.raises(error, match=match):
            call(**kwargs)


def test_bad_arguments_of_simulate_layers():
    neurons = [snnx.LIF(tau=5.0), snnx.LIF(tau=5.0)]
    w1, w2 = jnp.ones((3, 2)), jnp.ones((1, 3))
    good = (jnp.array([1.0, 2.0, jnp.inf]), jnp.array([0, 1, -1]))

    def call(weights=(w1, w2), inputs=good, max_spikes=4, layers=neurons):
        return ode.simulate_layers(layers, list(weights), inputs, t1=5.0, max_spikes=max_spikes)

    cases = [
        # Channel 2 of a 2-column `weights[0]` used to be routed to channel 1.
        (ValueError, "`input_spikes` names channel", dict(inputs=(good[0], jnp.array([0, 2, 0])))),
        (ValueError, "`input_spikes` names channel", dict(inputs=(good[0], jnp.array([-1, 0, 0])))),
        (TypeError, "`input_spikes`", dict(inputs=(good[0], jnp.array([0.0, 1.0, 0.0])))),
        (ValueError, "`input_spikes`", dict(inputs=(good[0], jnp.array([0, 1])))),
        (ValueError, "`input_spikes`", dict(inputs=(jnp.array([1.0, np.nan, 2.0]), good[1]))),
        (ValueError, r"`weights\[1\]` has 2 input columns", dict(weights=(w1, jnp.ones((1, 2))))),
        (ValueError, r"`weights\[0\]` must be a matrix", dict(weights=(jnp.ones(3), w2))),
        (ValueError, "`neurons` and `weights`", dict(weights=(w1,))),
        (ValueError, "`max_spikes` needs one bound per layer", dict(max_spikes=[4])),
        (ValueError, r"`max_spikes\[1\]`", dict(max_spikes=[4, 0])),
    ]
    for error, match, kwargs in cases:
        with pytest.raises(error, match=match):
            call(**kwargs)


def test_traced_channel_outside_the_weights_is_refused():
    @eqx.filter_jit
    def counts(channels):
        inputs = (jnp.array([1.0, 2.0]), channels)
        sols = ode.simulate_layers([snnx.LIF(tau=5.0)], [jnp.full((1, 2), 6.0)], inputs,
                                   t1=5.0, max_spikes=2)
        return sols[0].spike_counts

    assert int(counts(jnp.array([0, 1]))[0]) == 2  # each jump of 1.2 crosses threshold
    with pytest.raises(eqx.EquinoxRuntimeError, match="`input_spikes` names a channel"):
        counts(jnp.array([0, 2]))
