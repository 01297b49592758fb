import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnx import encoders


def test_rate_bernoulli_expected_rate_and_determinism(getkey):
    x = jnp.array([0.0, 0.25, 0.5, 1.0])
    key = getkey()
    s = encoders.rate(x, 4000, key=key, max_rate=0.8)
    assert s.shape == (4000, 4)
    assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    # P(spike) = x * max_rate * dt; 4000 Bernoulli draws: std <= 0.008
    np.testing.assert_allclose(s.mean(0), x * 0.8, atol=0.03)
    assert s[:, 0].sum() == 0 and s[:, 3].mean() > 0.75
    np.testing.assert_array_equal(s, encoders.rate(x, 4000, key=key, max_rate=0.8))


def test_rate_poisson_counts(getkey):
    x = jnp.array([0.5, 1.0])
    s = encoders.rate(x, 5000, key=getkey(), max_rate=2.0, method="poisson")
    # Poisson(lambda): mean = variance = lambda = x * max_rate
    np.testing.assert_allclose(s.mean(0), [1.0, 2.0], atol=0.08)
    np.testing.assert_allclose(s.var(0), [1.0, 2.0], rtol=0.1)
    assert s.max() > 1


def test_rate_batched_shapes_and_dt(getkey):
    x = jnp.full((3, 2, 2), 0.5)
    s = encoders.rate(x, 7, key=getkey(), max_rate=100.0, dt=0.01)
    assert s.shape == (7, 3, 2, 2)


def test_rate_errors(getkey):
    with pytest.raises(ValueError, match=r"`x` must lie in \[0, 1\]"):
        encoders.rate(jnp.array([2.0]), 3, key=getkey())
    with pytest.raises(ValueError, match="must be <= 1"):
        encoders.rate(jnp.array([0.5]), 3, key=getkey(), max_rate=2.0)
    with pytest.raises(ValueError, match="`method`"):
        encoders.rate(jnp.array([0.5]), 3, key=getkey(), method="gauss")
    with pytest.raises(ValueError, match="`num_steps` must be >= 1"):
        encoders.rate(jnp.array([0.5]), 0, key=getkey())
    with pytest.raises(TypeError, match="`num_steps`"):
        encoders.rate(jnp.array([0.5]), 2.5, key=getkey())


def test_latency_linear_first_spike_times():
    x = jnp.array([1.0, 0.5, 0.0, 0.005, 0.02])
    T = 11
    s = np.asarray(encoders.latency(x, T, threshold=0.01))
    assert s.shape == (T, 5)
    # t = round((1 - x)(T - 1)): 0, 5, none (below threshold), none, round(9.8) = 10
    assert s.sum(0).tolist() == [1, 1, 0, 0, 1]
    assert np.argmax(s[:, 0]) == 0 and np.argmax(s[:, 1]) == 5 and np.argmax(s[:, 4]) == 10


def test_latency_log_matches_rc_charging_time():
    x = jnp.array([1.0, 0.5, 0.3, 0.2])
    tau, thr, T = 5.0, 0.2, 50
    s = np.asarray(encoders.latency(x, T, method="log", tau=tau, threshold=thr))
    expected = np.round(tau * np.log(np.array([1.0, 0.5, 0.3]) / (np.array([1.0, 0.5, 0.3]) - thr)))
    np.testing.assert_array_equal(np.argmax(s[:, :3], axis=0), expected)
    assert s[:, 3].sum() == 0  # x == threshold never reaches it
    # a spike time beyond the window is dropped
    late = encoders.latency(jnp.array([0.2001]), 10, method="log", tau=tau, threshold=thr)
    assert late.sum() == 0


def test_latency_errors():
    with pytest.raises(ValueError, match="`threshold`"):
        encoders.latency(jnp.array([0.5]), 5, threshold=1.5)
    with pytest.raises(ValueError, match="`tau`"):
        encoders.latency(jnp.array([0.5]), 5, method="log", tau=0.0)
    with pytest.raises(ValueError, match="`method`"):
        encoders.latency(jnp.array([0.5]), 5, method="exp")


def test_delta_on_off():
    xs = jnp.array([0.0, 0.5, 0.55, 0.2, 0.2])[:, None]
    s = np.asarray(encoders.delta(xs, threshold=0.1))
    assert s.shape == (5, 2, 1)
    assert s[:, 0, 0].tolist() == [0, 1, 0, 0, 0]  # +0.5 only
    assert s[:, 1, 0].tolist() == [0, 0, 0, 1, 0]  # -0.35 only
    assert encoders.delta(xs, threshold=0.1, off_spikes=False).shape == (5, 1)
    with pytest.raises(ValueError, match="`threshold`"):
        encoders.delta(xs, threshold=-1.0)
    with pytest.raises(ValueError, match="leading time axis"):
        encoders.delta(jnp.zeros(()))


def test_population_gaussian_fields():
    x = jnp.array([0.0, 0.5])
    a = np.asarray(encoders.population(x, 5, low=0.0, high=1.0))
    assert a.shape == (2, 5)
    # centres 0, .25, .5, .75, 1 and sigma .25: exp(-(x - c)^2 / (2 * .0625))
    c = np.linspace(0, 1, 5)
    np.testing.assert_allclose(a, np.exp(-((np.array([[0.0], [0.5]]) - c) ** 2) / 0.125),
                               rtol=1e-6)
    assert np.argmax(a[1]) == 2
    with pytest.raises(ValueError, match="`num_neurons` must be >= 2"):
        encoders.population(x, 1)
    with pytest.raises(ValueError, match="`low` must be < `high`"):
        encoders.population(x, 3, low=1.0, high=0.0)
    with pytest.raises(ValueError, match="`sigma`"):
        encoders.population(x, 3, sigma=0.0)


def test_encoders_under_jit(getkey):
    key = getkey()
    f = jax.jit(lambda x: encoders.rate(x, 5, key=key) + encoders.latency(x, 5))
    assert f(jnp.array([0.5, 1.0])).shape == (5, 2)
