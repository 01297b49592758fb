"""Feedback alignment against jax.grad (B = W^T), PAL's update against a hand computation,
and PAL's alignment on a small problem."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snnx.learn import (
    PAL,
    Fixed,
    RateNetwork,
    alignment_angle,
    feedback_alignment_grad,
    feedback_step,
    init_feedback,
    pal_update,
)


def _loss(y, target):
    return -jax.nn.log_softmax(y)[target]


def _cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def test_fa_with_transposed_weights_is_backprop(dtype, getkey):
    net = _cast(RateNetwork((5, 7, 6, 3), key=getkey()), dtype)
    x = jax.random.normal(getkey(), (5,), dtype)
    noise = [0.1 * jax.random.normal(getkey(), (n,), dtype) for n in (7, 6)]
    transposed = tuple(layer.weight.T for layer in net.layers[1:])

    @eqx.filter_jit
    def both(net, fb, x, noise):
        loss, grads, _ = feedback_alignment_grad(net, fb, x, 2, _loss, noise=noise)
        ref_loss, ref = eqx.filter_value_and_grad(
            lambda n: _loss(n.forward(x, noise)[0][-1], 2))(net)
        return loss, grads, ref_loss, ref

    loss, grads, ref_loss, ref = both(net, transposed, x, noise)
    assert grads.layers[0].weight.dtype == dtype
    tol = 1e-5 if dtype == jnp.float32 else 1e-13
    assert abs(float(loss - ref_loss)) < tol
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, atol=tol, rtol=tol)
    # random feedback is something else
    _, fa, _, _ = both(net, init_feedback(net, key=getkey()), x, noise)
    assert float(jnp.abs(fa.layers[0].weight - ref.layers[0].weight).max()) > 1e-4
    np.testing.assert_allclose(fa.layers[2].weight, ref.layers[2].weight, atol=tol)


def test_pal_update_by_hand():
    """dB = eta (xi r_hp^T - alpha B) on a 2x3 case, worked out by hand."""
    b = jnp.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    xi = jnp.array([0.2, -0.1])
    r_hp = jnp.array([1.0, 0.0, 3.0])
    (new,) = pal_update((b,), (jnp.outer(xi, r_hp),), eta=0.5, alpha=0.1)
    # xi r^T = [[0.2, 0, 0.6], [-0.1, 0, -0.3]]; minus 0.1 B; times 0.5; plus B
    expected = np.array([[1.0 + 0.5 * (0.2 - 0.1), 0.0, -1.0 + 0.5 * (0.6 + 0.1)],
                         [0.5 + 0.5 * (-0.1 - 0.05), 2.0 + 0.5 * (0.0 - 0.2), 0.0 + 0.5 * -0.3]])
    np.testing.assert_allclose(new, expected, atol=1e-7)


def test_feedback_step_correlation_by_hand(getkey):
    """Two passes, tau_hp = 1: the correlation is xi_2 (r_2 - r_1)^T with the passes' own
    noise (recomputed here from the same keys)."""
    net = RateNetwork((3, 4, 2), key=getkey())
    fb = init_feedback(net, key=getkey())
    x, key = jax.random.normal(getkey(), (1, 3)), getkey()
    rule = PAL(eta=1.0, alpha=0.0, noise=0.3, steps=2, tau_hp=1.0)
    _, _, (new,) = feedback_step(net, fb, x, jnp.array([1]), _loss, rule, key=key)
    (k,) = jax.random.split(key, 1)
    k1, k2 = jax.random.split(k, 2)
    xi = [0.3 * jax.random.normal(jax.random.split(kk, 1)[0], (4,)) for kk in (k1, k2)]
    r = [net.forward(x[0], [n])[0][2] for n in xi]
    np.testing.assert_allclose(new - fb[0], jnp.outer(xi[1], r[1] - r[0]), atol=1e-6)


def test_pal_aligns_feedback(getkey):
    """A small classification task: PAL drives the angle between B and W^T far down (the
    notebook compares it with fixed feedback on digits)."""
    net0 = RateNetwork((6, 12, 10, 4), key=getkey())
    fb0 = init_feedback(net0, key=getkey())
    xs = jax.random.normal(getkey(), (32, 6))
    ys = jnp.argmax(xs[:, :4], -1)
    opt = optax.adam(3e-3)

    def train(rule):
        @eqx.filter_jit
        def run(net, fb):
            def body(carry, k):
                net, fb, st = carry
                _, g, fb = feedback_step(net, fb, xs, ys, _loss, rule, key=k)
                up, st = opt.update(g, st, eqx.filter(net, eqx.is_inexact_array))
                return (eqx.apply_updates(net, up), fb, st), None

            st = opt.init(eqx.filter(net, eqx.is_inexact_array))
            (net, fb, _), _ = jax.lax.scan(body, (net, fb, st),
                                           jax.random.split(jax.random.key(0), 40))
            return alignment_angle(fb, net)

        return np.asarray(run(net0, fb0))

    start = np.asarray(alignment_angle(fb0, net0))
    pal = train(PAL(noise=0.1, steps=8, eta=10.0))
    assert np.all(start > 60)
    assert np.all(pal < 30), pal


def test_alignment_angle(getkey):
    net = RateNetwork((3, 4, 5, 2), key=getkey())
    same = tuple(layer.weight.T for layer in net.layers[1:])
    np.testing.assert_allclose(alignment_angle(same, net), [0.0, 0.0], atol=0.1)
    np.testing.assert_allclose(alignment_angle(tuple(-b for b in same), net), [180.0, 180.0],
                               atol=0.1)


def test_feedback_bad_inputs(getkey):
    with pytest.raises(ValueError, match="`sizes`"):
        RateNetwork((3,), key=getkey())
    with pytest.raises(TypeError, match="`activation`"):
        RateNetwork((3, 2), key=getkey(), activation="tanh")
    net = RateNetwork((3, 4, 2), key=getkey())
    with pytest.raises(ValueError, match="`feedback`"):
        feedback_alignment_grad(net, (jnp.ones((2, 4)),), jnp.ones(3), 0, _loss)
    with pytest.raises(TypeError, match="`rule`"):
        feedback_step(net, init_feedback(net, key=getkey()), jnp.ones((2, 3)), jnp.zeros(2),
                      _loss, "pal", key=getkey())
    with pytest.raises(ValueError, match="`xs`"):
        feedback_step(net, init_feedback(net, key=getkey()), jnp.ones((2, 5)), jnp.zeros(2),
                      _loss, Fixed(), key=getkey())
    with pytest.raises(ValueError, match="`eta`"):
        PAL(eta=0.0)
    with pytest.raises(ValueError, match="`alpha`"):
        PAL(alpha=-1.0)
    with pytest.raises(ValueError, match="`steps`"):
        Fixed(steps=0)
    with pytest.raises(ValueError, match="`noise`"):
        PAL(noise=-0.1)
    with pytest.raises(ValueError, match="`tau_hp`"):
        PAL(tau_hp=0.5)
