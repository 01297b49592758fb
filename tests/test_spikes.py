import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx import spikes

X = jnp.array([-2.0, -0.5, -0.1, -0.01, 0.0, 0.01, 0.1, 0.3, 1.5])


def _analytic(name, a, x):
    """Textbook derivatives, written independently of snnx's code."""
    x = np.asarray(x, np.float64)
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + a * np.abs(x)) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-a * x))
        return a * s * (1 - s)
    if name == "arctan":
        # d/dx [ arctan(pi/2 * a * x) / pi ]
        return (a / 2) / (1 + (np.pi / 2 * a * x) ** 2)
    if name == "triangular":
        return a * np.clip(1 - a * np.abs(x), 0, None)
    if name == "rectangular":
        return np.where(np.abs(x) < 0.5 / a, a, 0.0)
    if name == "exponential":
        return a / 2 * np.exp(-a * np.abs(x))
    if name == "straight_through":
        return np.ones_like(x)
    raise KeyError(name)


CASES = [
    ("fast_sigmoid", spikes.FastSigmoid, 10.0),
    ("sigmoid", spikes.Sigmoid, 4.0),
    ("arctan", spikes.Arctan, 2.0),
    ("triangular", spikes.Triangular, 1.5),
    ("rectangular", spikes.Rectangular, 2.0),
    ("exponential", spikes.Exponential, 3.0),
    ("straight_through", spikes.StraightThrough, None),
]


@pytest.mark.parametrize("name,cls,alpha", CASES)
def test_surrogate_gradient_matches_analytic_derivative(name, cls, alpha):
    surrogate = cls() if alpha is None else cls(alpha=alpha)
    grads = jax.vmap(jax.grad(lambda x: surrogate(x)))(X)
    np.testing.assert_allclose(grads, _analytic(name, alpha, X), rtol=1e-5, atol=1e-7)
    # Forward-mode sees the same surrogate.
    _, tangents = jax.jvp(surrogate, (X,), (jnp.ones_like(X),))
    np.testing.assert_allclose(tangents, _analytic(name, alpha, X), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,cls,alpha", CASES)
def test_surrogate_forward_is_exact_heaviside(name, cls, alpha):
    surrogate = cls() if alpha is None else cls(alpha=alpha)
    out = surrogate(X)
    assert out.dtype == X.dtype
    np.testing.assert_array_equal(out, (np.asarray(X) > 0).astype(np.float32))


@pytest.mark.parametrize("cls", [spikes.Triangular, spikes.Rectangular, spikes.Exponential])
def test_unit_area_surrogates_integrate_to_one(cls):
    dx = 1e-4
    xs = jnp.asarray(np.arange(-200_000, 200_001) * dx)
    d = np.asarray(cls(alpha=2.0).derivative(xs), np.float64)
    assert d.sum() * dx == pytest.approx(1.0, abs=1e-3)


def test_custom_surrogate_in_one_line():
    gauss = spikes.Custom(lambda x: jnp.exp(-(x**2)))
    g = jax.grad(lambda x: gauss(x))(0.5)
    assert float(g) == pytest.approx(np.exp(-0.25), rel=1e-6)
    assert float(gauss(jnp.float32(0.5))) == 1.0


def test_custom_surrogate_must_be_elementwise():
    bad = spikes.Custom(lambda x: jnp.sum(x))
    with pytest.raises(ValueError, match="shaped like its input"):
        bad(X)


def test_bad_alpha_and_types():
    with pytest.raises(ValueError, match="`alpha`"):
        spikes.FastSigmoid(alpha=0.0)
    with pytest.raises(TypeError, match="floating-point"):
        spikes.heaviside(jnp.arange(3), jnp.ones(3))
    with pytest.raises(TypeError, match="`fn`"):
        spikes.Custom(3.0)


def test_escape_noise_rate_and_gradient(getkey):
    noise = spikes.EscapeNoise(temperature=0.5)
    x = jnp.full((200_000,), 0.3)
    s = noise(x, key=getkey())
    assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-0.3 / 0.5))
    assert float(s.mean()) == pytest.approx(p, abs=5e-3)  # ~7 standard errors
    g = jax.grad(lambda v: noise(v, key=jax.random.key(0)))(0.3)
    assert float(g) == pytest.approx(p * (1 - p) / 0.5, rel=1e-5)
    with pytest.raises(ValueError, match="needs a `key`"):
        noise(x)


def test_escape_noise_inside_a_neuron(getkey):
    lif = snnx.LIF(tau=5.0, surrogate=spikes.EscapeNoise(0.2))
    xs = jnp.full((50, 4), 0.5)
    out1, _ = snnx.run(lif, xs, key=jax.random.key(3))
    out2, _ = snnx.run(lif, xs, key=jax.random.key(3))
    out3, _ = snnx.run(lif, xs, key=jax.random.key(4))
    assert eqx.tree_equal(out1, out2)
    assert not bool(jnp.all(out1 == out3))
