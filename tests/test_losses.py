import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnx import losses


def _ce(logits, labels):
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.mean(logp[np.arange(len(labels)), labels])


@pytest.fixture
def batch(getkey):
    outs = jax.random.uniform(getkey(), (3, 4, 5))  # (batch, time, classes)
    labels = jnp.array([0, 4, 2])
    return outs, labels


def test_rate_count_membrane_ce_by_hand(batch):
    outs, labels = batch
    o = np.asarray(outs)
    np.testing.assert_allclose(losses.ce_rate(outs, labels), _ce(o.mean(1), labels), rtol=1e-5)
    np.testing.assert_allclose(losses.ce_count(outs, labels), _ce(o.sum(1), labels), rtol=1e-5)
    np.testing.assert_allclose(losses.ce_max_membrane(outs, labels), _ce(o.max(1), labels),
                               rtol=1e-5)
    np.testing.assert_allclose(losses.ce_mean_membrane(outs, labels), _ce(o.mean(1), labels),
                               rtol=1e-5)


def test_time_axis_argument(batch):
    outs, labels = batch
    ref = losses.ce_max_membrane(outs, labels)
    np.testing.assert_allclose(
        losses.ce_max_membrane(jnp.swapaxes(outs, 0, 1), labels, time_axis=0), ref, rtol=1e-6)
    np.testing.assert_allclose(
        losses.ce_max_membrane(jnp.swapaxes(outs, 1, 2), labels, time_axis=2), ref, rtol=1e-6)


def test_mse_count_by_hand():
    s = jnp.zeros((1, 4, 3)).at[0, :, 1].set(1.0).at[0, 0, 2].set(1.0)  # counts [0, 4, 1]
    # targets: class 1 correct at rate .75 -> 3 spikes; others .25 -> 1 spike
    val = losses.mse_count(s, jnp.array([1]), correct_rate=0.75, incorrect_rate=0.25)
    np.testing.assert_allclose(val, ((0 - 1) ** 2 + (4 - 3) ** 2 + (1 - 1) ** 2) / 3)
    rates = jnp.array([[0.0, 1.0, 0.25]])
    np.testing.assert_allclose(losses.mse_count(s, rates), 0.0)
    with pytest.raises(ValueError, match=r"float `labels` \(target rates\) must have shape"):
        losses.mse_count(s, jnp.zeros((1, 4)))


def test_first_spike_times_and_loss():
    s = np.zeros((1, 5, 3), np.float32)
    s[0, 2, 0] = 1
    s[0, 4, 0] = 1
    s[0, 1, 1] = 1  # class 1 first, at t=1; class 2 never -> T = 5
    t = losses.first_spike_times(jnp.asarray(s))
    np.testing.assert_array_equal(t, [[2, 1, 5]])
    val = losses.ce_first_spike(jnp.asarray(s), jnp.array([1]), scale=0.5)
    np.testing.assert_allclose(val, _ce(-0.5 * np.array([[2, 1, 5]]), [1]), rtol=1e-6)
    g = jax.grad(lambda x: losses.ce_first_spike(x, jnp.array([1])))(jnp.asarray(s))
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


def test_rate_regularisers_by_hand():
    s = np.zeros((2, 4, 3), np.float32)
    s[:, :, 0] = 1.0  # rate 1
    s[:, :2, 1] = 1.0  # rate .5; neuron 2 silent
    s = jnp.asarray(s)
    np.testing.assert_allclose(losses.rate_upper(s, 0.25),
                               ((1 - .25) ** 2 + (.5 - .25) ** 2 + 0) / 3, rtol=1e-6)
    np.testing.assert_allclose(losses.rate_upper(s, 0.25, per="layer"), (0.5 - 0.25) ** 2,
                               rtol=1e-6)
    np.testing.assert_allclose(losses.rate_lower(s, 0.1), 0.1**2 / 3, rtol=1e-6)
    np.testing.assert_allclose(losses.rate_lower(s, 0.6, per="layer"), (0.6 - 0.5) ** 2,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="`per`"):
        losses.rate_upper(s, 0.1, per="batch")


def test_shape_validation(batch):
    outs, labels = batch
    with pytest.raises(ValueError, match=r"shape \(batch, time, classes\)"):
        losses.ce_rate(outs[0], labels)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(batch,\)"):
        losses.ce_rate(outs, labels[:2])
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 5\)"):
        losses.ce_rate(outs, jnp.array([0, 5, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        losses.ce_rate(outs, jnp.array([0.0, 1.0, 2.0]))
    # time length == class count: a swapped layout is caught by `num_classes`
    square = jnp.zeros((3, 5, 5))
    losses.ce_rate(square, labels, num_classes=5)
    with pytest.raises(ValueError, match="probably swapped"):
        losses.ce_rate(jnp.zeros((3, 5, 4)), labels[:3] % 4, time_axis=2, num_classes=4)


def test_losses_jit_and_grad(batch):
    outs, labels = batch
    for fn in (losses.ce_rate, losses.ce_count, losses.ce_max_membrane,
               losses.ce_mean_membrane, losses.mse_count, losses.ce_first_spike):
        g = jax.jit(jax.grad(fn))(outs, labels)
        assert g.shape == outs.shape and np.all(np.isfinite(g))


@pytest.mark.parametrize("binary", [False, True])
def test_ce_first_spike_gradient_is_the_closed_form(binary):
    # tau_bc = sum_t prod_{t'<=t} (1 - s_bt'c); L = mean_b CE(-scale tau_b, y_b), so
    # dL/ds_buc = -(scale / B) (softmax(-scale tau_b)_c - [c = y_b]) * dtau_bc/ds_buc with
    # dtau_bc/ds_buc = -sum_{t>=u} prod_{t'<=t, t'!=u} (1 - s_bt'c)  (no division: s may be 1)
    rng = np.random.default_rng(0)
    B, T, C, scale = 3, 6, 4, 0.7
    s = rng.uniform(size=(B, T, C))
    if binary:
        s = (s < 0.3).astype(np.float64)
    labels = np.array([0, 2, 3])
    tau = np.cumprod(1 - s, axis=1).sum(axis=1)
    z = -scale * tau
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dl_dtau = -scale / B * (p - np.eye(C)[labels])
    want = np.zeros_like(s)
    for b in range(B):
        for c in range(C):
            for u in range(T):
                keep = 1 - s[b, :, c]
                total = 0.0
                for t in range(u, T):
                    total += np.prod(np.delete(keep[: t + 1], u))
                want[b, u, c] = -dl_dtau[b, c] * total
    g = jax.jit(jax.grad(losses.ce_first_spike))(jnp.asarray(s, jnp.float32), jnp.asarray(labels),
                                                 scale=scale)
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)
    assert np.abs(want).max() > 1e-3
