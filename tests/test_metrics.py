import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx import losses, metrics


def test_predictors_and_accuracies():
    o = np.zeros((2, 3, 3), np.float32)
    o[0, :, 2] = 1.0  # sample 0: class 2 spikes every step
    o[0, 0, 1] = 1.0  # class 1 spikes first (t=0)
    o[1, 1, 0] = 5.0  # sample 1: class 0 has the max membrane
    o[1, :, 1] = 2.0  # class 1 the highest mean (2 vs 5/3)
    o = jnp.asarray(o)
    assert metrics.predict_rate(o).tolist() == [2, 1]
    assert metrics.predict_max_membrane(o).tolist() == [1, 0]  # ties -> first index
    assert metrics.predict_mean_membrane(o).tolist() == [2, 1]
    assert metrics.predict_first_spike(o)[0] == 1
    labels = jnp.array([2, 0])
    assert float(metrics.accuracy_rate(o, labels)) == 0.5
    assert float(metrics.accuracy_max_membrane(o, labels)) == 0.5
    assert float(metrics.accuracy(jnp.array([1, 2]), jnp.array([1, 3]))) == 0.5
    with pytest.raises(ValueError, match="same shape"):
        metrics.accuracy(jnp.array([1, 2]), jnp.array([1]))


def test_predictor_for_losses():
    assert metrics.predictor_for(losses.ce_max_membrane) is metrics.predict_max_membrane
    assert metrics.predictor_for(losses.mse_count) is metrics.predict_rate
    assert metrics.predictor_for(functools.partial(losses.ce_first_spike, scale=2.0)) is (
        metrics.predict_first_spike)
    assert metrics.predictor_for(lambda o, y: 0.0) is None


def _model(key):
    k1, k2 = jax.random.split(key)
    return snnx.Sequential([eqx.nn.Linear(4, 6, key=k1), snnx.LIF(tau=2.0, v_threshold=0.2),
                            eqx.nn.Linear(6, 3, key=k2), snnx.LI(tau=2.0)])


def test_sparsity_and_synops_by_hand(getkey):
    model = _model(getkey())
    xs = (jax.random.uniform(getkey(), (8, 4)) < 0.5).astype(jnp.float32)
    _, _, recs = snnx.run(model, xs, record=True)
    hidden = np.asarray(recs[1].output)
    readout = np.asarray(recs[3].output)
    expected = 1 - (np.count_nonzero(hidden) + np.count_nonzero(readout)) / (
        hidden.size + readout.size)
    assert metrics.activation_sparsity(model, recs) == pytest.approx(expected)
    ops = metrics.synaptic_operations(model, xs, recs)
    # binary inputs -> ACs: nnz(input) * 6 + nnz(hidden spikes) * 3
    assert ops["effective_acs"] == np.count_nonzero(xs) * 6 + np.count_nonzero(hidden) * 3
    assert ops["effective_macs"] == 0
    assert ops["dense"] == 8 * 4 * 6 + 8 * 6 * 3
    rates = metrics.firing_rates(recs[1].output[None])
    np.testing.assert_allclose(rates, hidden.mean(0), rtol=1e-6)
    with pytest.raises(ValueError, match="records"):
        metrics.activation_sparsity(model, recs[:2])
