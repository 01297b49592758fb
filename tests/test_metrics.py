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


# --- NeuroBench metrics: each definition against counts made by hand or a naive loop ---


def _linear(weight, bias, dtype):
    w = jnp.asarray(weight, dtype)
    lin = eqx.nn.Linear(w.shape[1], w.shape[0], key=jax.random.key(0), dtype=dtype)
    lin = eqx.tree_at(lambda m: m.weight, lin, w)
    return eqx.tree_at(lambda m: m.bias, lin, jnp.asarray(bias, dtype))


def test_synops_binarised_weights_by_hand(dtype):
    # A Threshold-free model: one Linear, then an LIF; the LIF's input is the Linear output.
    lin = _linear([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], [5.0, 5.0], dtype)
    model = snnx.Sequential([lin, snnx.LIF(tau=2.0)])
    xs = jnp.asarray([[1, 0, 1],        # spikes: ACs, pairs (0,0) (0,2) (1,2) -> 3
                      [0.5, 2, 0],      # real: MACs, pair (0,0) -> 1
                      [-1, 0, 1],       # {-1,0,1}: ACs -> 3
                      [0, 0, 0]], dtype)  # nothing
    _, _, recs = snnx.run(model, xs, record=True)
    ops = metrics.synaptic_operations(model, xs, recs)
    assert ops["effective_acs"] == 6
    assert ops["effective_macs"] == 1
    assert ops["dense"] == 4 * 3 * 2  # bias excluded: in * out per step
    assert metrics.connection_sparsity(model) == pytest.approx(3 / 6)


def test_synops_conv_padding_by_hand():
    # float32 only: `snnx.run` probes a Conv's output shape with a float32 input, which a
    # float64 Conv refuses (an engine limitation, not a metric one).
    dtype = jnp.float32
    conv = eqx.nn.Conv1d(1, 1, 3, padding=1, key=jax.random.key(0), dtype=dtype)
    conv = eqx.tree_at(lambda c: c.weight, conv, jnp.asarray([[[1.0, 0.0, 1.0]]], dtype))
    model = snnx.Sequential([conv, snnx.LIF(tau=2.0)])
    xs = jnp.asarray([[[1.0, 1.0, 0.0, 1.0]]], dtype)  # one step, (C=1, L=4)
    _, _, recs = snnx.run(model, xs, record=True)
    ops = metrics.synaptic_operations(model, xs, recs)
    # outputs: p0 = x1, p1 = x0 + x2, p2 = x1 + x3, p3 = x2 -> 1 + 1 + 2 + 0
    assert ops["effective_acs"] == 4 and ops["effective_macs"] == 0
    assert ops["dense"] == 2 + 3 + 3 + 2  # zero padding is no operation


def test_membrane_updates_and_neuron_ops_by_hand(dtype):
    xs = jnp.asarray([[0, 0], [1, 0], [0, 0], [0, 0]], dtype)
    # neuron 0: step 0 counts (first step), then input at 1 and decay at 2, 3 -> 4 updates;
    # neuron 1: only the first step (its membrane stays at rest) -> 1.
    for neuron, reset, cost in [(snnx.LIF(tau=2.0, v_threshold=5.0), "subtract", 4),
                                (snnx.LIF(tau=2.0, reset_mode="to_value"), "to_value", 4),
                                (snnx.CuBaLIF(tau_syn=2.0, tau_mem=3.0, v_threshold=5.0),
                                 "subtract", 6),
                                (snnx.CuBaLIF(tau_syn=2.0, tau_mem=3.0,
                                              reset_mode="to_value"), "to_value", 8)]:
        model = snnx.Sequential([neuron])
        _, _, recs = snnx.run(model, xs, record=True)
        assert metrics.membrane_updates(model, xs, recs) == 5
        ops = metrics.neuron_operations(model, xs, recs)
        assert ops["effective"] == 5 * cost, reset
        assert ops["dense"] == 2 * 4 * cost
        assert ops["uncounted"] == []


def test_neuron_ops_unknown_cost_warns_and_can_be_given(getkey):
    model = _model(getkey())  # LIF hidden, LI readout (no NeuroBench cost)
    xs = (jax.random.uniform(getkey(), (5, 4)) < 0.5).astype(jnp.float32)
    _, _, recs = snnx.run(model, xs, record=True)
    with pytest.warns(UserWarning, match=r"3 \(LI\)"):
        ops = metrics.neuron_operations(model, xs, recs)
    assert ops["uncounted"] == [3]
    assert ops["dense"] == 5 * 6 * 4
    given = metrics.neuron_operations(model, xs, recs, neuron_ops={snnx.LI: 2})
    assert given["dense"] == 5 * 6 * 4 + 5 * 3 * 2
    with pytest.raises(TypeError, match="`neuron_ops`"):
        metrics.neuron_operations(model, xs, recs, neuron_ops=[snnx.LI])
    with pytest.raises(ValueError, match="`neuron_ops`"):
        metrics.neuron_operations(model, xs, recs, neuron_ops={snnx.LI: -1})


def test_recurrent_synops_and_sparsity_naive(getkey, dtype):
    rec = snnx.Recurrent(snnx.LIF(tau=3.0, v_threshold=0.3), 5, key=getkey(),
                         zero_diagonal=True, init_scale=2.0)
    rec = eqx.tree_at(lambda r: r.weight, rec, rec.weight.at[0, 1].set(0.0).astype(dtype))
    lin = eqx.nn.Linear(3, 5, key=getkey(), dtype=dtype)
    lin = eqx.tree_at(lambda m: m.weight, lin, 3 * jnp.abs(lin.weight))  # drive to spike
    model = snnx.Sequential([lin, rec])
    xs = (jax.random.uniform(getkey(), (12, 3)) < 0.6).astype(dtype)
    _, _, recs = snnx.run(model, xs, record=True)
    y = np.asarray(recs[1].output)
    assert y.any()
    w_eff = np.asarray(rec.weight) * (1 - np.eye(5))
    nz_col = np.count_nonzero(w_eff, axis=0)
    x = np.asarray(xs)
    w_in = np.asarray(lin.weight) != 0
    expected = sum(int(np.sum(w_in * (x[t] != 0)[None, :])) for t in range(12))
    expected += sum(int(np.sum((y[t - 1] != 0) * nz_col)) for t in range(1, 12))
    ops = metrics.synaptic_operations(model, xs, recs)
    assert ops["effective_acs"] == expected and ops["effective_macs"] == 0
    assert ops["dense"] == 12 * (3 * 5 + 5 * 5)
    zeros = 5 + 1 + int(np.sum(np.asarray(lin.weight) == 0))  # diagonal + the set zero
    assert metrics.connection_sparsity(model) == pytest.approx(zeros / (15 + 25))
    assert metrics.activation_sparsity(model, recs) == pytest.approx(1 - np.mean(y != 0))


def test_footprint_by_hand():
    lin = eqx.nn.Linear(3, 2, key=jax.random.key(0))
    assert metrics.footprint(snnx.Sequential([lin])) == (6 + 2) * 4
    model = snnx.Sequential([lin, snnx.LIF(tau=2.0)])
    # 5 scalar float32 LIF constants (log_tau, r, v_leak, v_threshold, v_reset)
    assert metrics.footprint(model) == (6 + 2) * 4 + 5 * 4
    assert metrics.footprint(model, (3,)) == metrics.footprint(model) + 2 * 4  # v: (2,)
    with pytest.raises(TypeError, match="`input_shape`"):
        metrics.footprint(lin, (3,))
    with pytest.raises(ValueError, match="`model`"):
        metrics.connection_sparsity(snnx.Sequential([snnx.LIF(tau=2.0)]))


def _naive_neurobench(model, xs, recs):
    """NeuroBench's definitions written out as loops over one sample's records."""
    acs = macs = dense = upd = nnz = total = 0
    inp = np.asarray(xs)
    for layer, rec in zip(model.layers, recs):
        if isinstance(layer, eqx.nn.Linear):
            w = np.asarray(layer.weight) != 0
            for x in inp:
                ops = int(np.sum(w * (x != 0)[None, :]))
                if np.all(np.isin(x, (-1, 0, 1))):
                    acs += ops
                else:
                    macs += ops
                dense += w.size
        else:
            out, v = np.asarray(rec.output), np.asarray(rec.state.v)
            nnz += np.count_nonzero(out)
            total += out.size
            upd += v.shape[1] + int(np.count_nonzero(v[1:] != v[:-1]))
        inp = np.asarray(rec.output)
    return acs, macs, dense, upd, nnz, total


def test_report_matches_naive_loop(getkey, capsys):
    k1, k2 = jax.random.split(getkey())
    model = snnx.Sequential([eqx.nn.Linear(4, 6, key=k1), snnx.LIF(tau=2.0, v_threshold=0.2),
                             eqx.nn.Linear(6, 3, key=k2), snnx.LIF(tau=2.0, v_threshold=0.2)])
    n, T = 7, 6
    xs = (jax.random.uniform(getkey(), (n, T, 4)) < 0.4).astype(jnp.float32)
    xs = xs.at[0].multiply(0.5)  # sample 0 is real-valued: MACs in the first layer
    ys = jax.random.randint(getkey(), (n,), 0, 3)
    rep = metrics.report(model, (xs, ys), batch_size=3)  # 3 batches, the last one padded
    assert "effective_acs" in capsys.readouterr().out
    per = {k: [] for k in ("acs", "macs", "dense", "upd", "nnz", "total")}
    outs, _, recs_b = jax.vmap(lambda x: snnx.run(model, x, record=True))(xs)
    for i in range(n):
        recs = jax.tree.map(lambda a: a[i], recs_b)
        for k, v in zip(per, _naive_neurobench(model, xs[i], recs)):
            per[k].append(v)
    assert per["macs"][0] > 0
    np.testing.assert_array_equal(rep.per_sample["effective_acs"], per["acs"])
    np.testing.assert_array_equal(rep.per_sample["effective_macs"], per["macs"])
    np.testing.assert_array_equal(rep.per_sample["dense_synops"], per["dense"])
    np.testing.assert_array_equal(rep.per_sample["membrane_updates"], per["upd"])
    np.testing.assert_array_equal(rep.per_sample["neuron_ops"], 4 * np.asarray(per["upd"]))
    assert rep.metrics["neuron_dense_ops"] == 4 * T * (6 + 3)
    assert rep.metrics["activation_sparsity"] == pytest.approx(
        1 - sum(per["nnz"]) / sum(per["total"]))
    assert rep.metrics["effective_acs"] == pytest.approx(np.mean(per["acs"]))
    assert rep.metrics["accuracy"] == pytest.approx(
        float(metrics.accuracy_rate(outs, ys)))
    assert rep.metrics["footprint"] == metrics.footprint(model)
    assert rep.metrics["connection_sparsity"] == metrics.connection_sparsity(model)
    nb = rep.neurobench()
    assert nb["SynapticOperations"]["Effective_ACs"] == rep.metrics["effective_acs"]
    assert rep.n == n and len(rep.per_sample["accuracy"]) == n
    assert "membrane_updates" in rep.table()


def test_report_bad_inputs(getkey):
    model = _model(getkey())
    xs = jnp.zeros((2, 3, 4))
    ys = jnp.zeros((2,), jnp.int32)
    with pytest.raises(TypeError, match="`model`"):
        metrics.report(snnx.LIF(tau=2.0), (xs, ys), show=False)
    with pytest.raises(TypeError, match="`model`"):
        metrics.report(snnx.Sequential([model]), (xs, ys), show=False)
    with pytest.raises(TypeError, match="`data`"):
        metrics.report(model, xs, show=False)
    with pytest.raises(ValueError, match="`batch_size`"):
        metrics.report(model, (xs, ys), batch_size=0, show=False)
    with pytest.raises(TypeError, match="`predict`"):
        metrics.report(model, (xs, ys), predict="rate", show=False)
    with pytest.raises(TypeError, match="`data` labels"):
        metrics.report(model, (xs, ys.astype(jnp.float32)), show=False)
    with pytest.raises(TypeError, match="`batched`"):
        metrics.synaptic_operations(model, xs[0], [None] * 4, batched=1)
    with pytest.raises(ValueError, match="`records`"):
        metrics.synaptic_operations(model, xs[0], [None] * 3)
