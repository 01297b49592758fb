"""snnx.Delay: per-channel delays discretised to whole steps on a ring buffer."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers.delay import Delay


def _shifted(xs, steps):
    """Reference: ys[t, c] = xs[t - k_c, c], zero before the start."""
    out = np.zeros_like(xs)
    for c, k in enumerate(steps):
        out[k:, c] = xs[: xs.shape[0] - k, c]
    return out


def test_per_channel_delays_match_shifted_input(getkey):
    xs = np.asarray(jax.random.normal(getkey(), (12, 4)))
    delay = Delay(jnp.array([0.0, 1.0, 3.0, 7.0]), dt=1.0)
    ys, state = snnx.run(delay, xs)
    np.testing.assert_array_equal(np.asarray(ys), _shifted(xs, [0, 1, 3, 7]))
    assert state.buffer.shape == (8, 4)


def test_delays_in_time_units_round_to_steps(getkey):
    # 0.2 ms / 0.1 ms = 2 steps; 0.36 ms -> 3.6 -> 4 (with a warning); 0.04 ms -> 0.
    with pytest.warns(UserWarning, match=r"not whole multiples of `dt=0.0001`"):
        delay = Delay(np.array([0.2e-3, 0.36e-3, 0.04e-3]), dt=1e-4)
    assert np.asarray(delay.steps).tolist() == [2, 4, 0]
    np.testing.assert_allclose(np.asarray(delay.delay), [2e-4, 4e-4, 0.0])  # as simulated
    # Nothing to learn: an optimiser sees no leaves (delays are whole steps).
    assert jax.tree.leaves(eqx.filter(delay, snnx.trainable_spec(delay))) == []
    xs = np.asarray(jax.random.normal(getkey(), (9, 3)))
    ys, _ = snnx.run(delay, xs)
    np.testing.assert_array_equal(np.asarray(ys), _shifted(xs, [2, 4, 0]))


def test_scalar_delay_on_images_jit_vmap_grad(getkey):
    delay = Delay(2.0)
    xb = jax.random.normal(getkey(), (3, 6, 2, 2, 2))
    ys, _ = eqx.filter_jit(jax.vmap(lambda x: snnx.run(delay, x)))(xb)
    np.testing.assert_array_equal(np.asarray(ys[:, 2:]), np.asarray(xb[:, :-2]))
    np.testing.assert_array_equal(np.asarray(ys[:, :2]), 0.0)
    # The gradient of sum(w_t * y_t) w.r.t. x_s is w_{s+2}.
    w = jnp.arange(6.0)
    g = jax.grad(lambda x: jnp.sum(w * snnx.run(delay, x)[0]))(jnp.ones(6))
    np.testing.assert_array_equal(np.asarray(g), [2, 3, 4, 5, 0, 0])


def test_delay_inside_sequential_layer_major_equals_step_major(getkey):
    model = snnx.Sequential([eqx.nn.Linear(3, 4, key=getkey()), Delay(jnp.arange(4.0)),
                             snnx.LIF(tau=3.0, r=3.0)])
    xs = jax.random.normal(getkey(), (10, 3)) * 3
    a, _ = snnx.run(model, xs, mode="layer")
    assert 0.05 < float(a.mean()) < 0.5  # the delayed LIF spikes
    b, _ = snnx.run(model, xs, mode="step")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_delays_raise():
    with pytest.raises(ValueError, match="`delay` must be >= 0"):
        Delay(jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="`delay` must be finite"):
        Delay(jnp.array([jnp.nan]))
    with pytest.raises(ValueError, match="`dt` must be a finite number > 0"):
        Delay(1.0, dt=0.0)
    with pytest.raises(ValueError, match="does not broadcast to the input shape"):
        Delay(jnp.ones(3)).init_state((4,))
