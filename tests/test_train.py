import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx import losses, train
from snnx.data import PackedSpikes

N, T, D, C = 32, 6, 4, 2


def _data(seed=0, n=N):
    """Class 0 drives inputs 0-1, class 1 inputs 2-3 (Bernoulli spikes)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % C
    p = np.where(np.repeat(np.eye(C), D // C, axis=1)[y], 0.8, 0.1)  # (n, D)
    x = (rng.random((n, T, D)) < p[:, None, :]).astype(np.uint8)
    return x, y.astype(np.int32)


def _model(key=jax.random.key(0)):
    k1, k2 = jax.random.split(key)
    # r=2: the hidden layer spikes (~12%), so fits compared for equality see spikes
    return snnx.Sequential([eqx.nn.Linear(D, 8, key=k1),
                            snnx.LIF(tau=3.0, v_threshold=0.5, r=2.0),
                            eqx.nn.Linear(8, C, key=k2), snnx.LI(tau=3.0)])


def _assert_hidden_spikes(model, x):
    rec = jax.vmap(lambda s: snnx.run(model, s, record=True)[2])(jnp.asarray(x, jnp.float32))
    assert 0.05 < float(rec[1].output.mean()) < 0.5


# One optimizer object for all fits: `fit` caches its compiled programs per (loss, optimizer),
# so the tests below compile once per configuration instead of once per call.
_OPT = optax.adam(5e-2)


def _fit(model, data, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("batch_size", 8)
    kw.setdefault("progress", False)
    return train.fit(model, losses.ce_max_membrane, _OPT, data,
                     key=jax.random.key(1), **kw)


def _params(model):
    return eqx.filter(model, eqx.is_inexact_array)


def test_fit_reduces_loss_and_reports_history():
    x, y = _data()
    model0 = _model()
    model, hist = _fit(model0, (x, y), epochs=6, eval_data=_data(1, 16))
    assert hist["loss"][-1] < 0.7 * hist["loss"][0]
    assert len(hist["accuracy"]) == 6 and hist["eval_accuracy"][-1] >= 0.75
    assert set(hist["rates"][0]) == {1}  # the LIF layer; the LI readout is not spiking
    assert 0 <= hist["eval_rates"][-1][1] <= 1
    ev = train.evaluate(model, (x, y), losses.ce_max_membrane)
    assert ev["n"] == N and ev["accuracy"] == pytest.approx(
        float(np.mean(np.asarray(snnx.metrics.predict_max_membrane(
            jax.vmap(lambda s: snnx.run(model, s)[0])(jnp.asarray(x, jnp.float32)))) == y)))


def test_scan_epoch_equals_step_mode_and_packed_equals_dense():
    x, y = _data()
    _assert_hidden_spikes(_model(), x)
    model0 = _model()
    m_step, h_step = _fit(model0, (x, y))
    m_scan, h_scan = _fit(model0, (x, y), scan_epoch=True)
    m_pack, _ = _fit(model0, (PackedSpikes(x), y), scan_epoch=True)
    assert eqx.tree_equal(_params(m_step), _params(m_scan), rtol=1e-5, atol=1e-6)
    assert eqx.tree_equal(_params(m_scan), _params(m_pack), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_step["loss"], h_scan["loss"], rtol=1e-5)
    assert not eqx.tree_equal(_params(m_step), _params(model0), rtol=1e-3)


def test_checkpoint_resume_continues_identically(tmp_path):
    x, y = _data()
    _assert_hidden_spikes(_model(), x)
    path = tmp_path / "ckpt.eqx"
    full, h_full = _fit(_model(), (x, y), epochs=3)
    _fit(_model(), (x, y), epochs=1, checkpoint=path)
    resumed, h_res = _fit(_model(), (x, y), epochs=3, checkpoint=path, resume=True)
    assert eqx.tree_equal(_params(full), _params(resumed), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_full["loss"], h_res["loss"], rtol=1e-6)
    other = snnx.Sequential([eqx.nn.Linear(D, 5, key=jax.random.key(0)), snnx.LIF(tau=3.0),
                             eqx.nn.Linear(5, C, key=jax.random.key(1)), snnx.LI(tau=3.0)])
    with pytest.raises(ValueError, match="different architecture"):
        _fit(other, (x, y), epochs=3, checkpoint=path, resume=True)
    bad = tmp_path / "bad.eqx"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not an snnx checkpoint"):
        train.load_checkpoint(bad, _model(), None)


@pytest.mark.parametrize("scan_epoch", [False, True])
def test_nonfinite_loss_stops_with_last_good_model(scan_epoch):
    x, y = _data()
    model0 = _model()

    def nan_loss(o, lab):
        return losses.ce_max_membrane(o, lab) * jnp.nan

    with pytest.warns(UserWarning, match=r"non-finite loss \(nan\) at epoch 1, step 1 of 4"):
        model, hist = train.fit(model0, nan_loss, optax.adam(1e-2), (x, y), epochs=3,
                                key=jax.random.key(0), batch_size=8, progress=False,
                                scan_epoch=scan_epoch)
    assert "epoch 1, step 1" in hist["stopped"] and hist["loss"] == []
    assert eqx.tree_equal(_params(model), _params(model0))


def test_last_batch_drop_warns_and_pad_uses_all():
    x, y = _data(n=30)
    with pytest.warns(UserWarning, match="6 of 30 training samples are skipped"):
        _, hist = _fit(_model(), (x, y), epochs=1)
    assert hist["skipped"] == 6
    _, hist = _fit(_model(), (x, y), epochs=1, last_batch="pad")
    assert hist["skipped"] == 0


def test_make_step_weights_mask_samples():
    x, y = _data()
    _assert_hidden_spikes(_model(), x)
    xb, yb = jnp.asarray(x[:4], jnp.float32), jnp.asarray(y[:4])
    model = _model()
    opt = optax.sgd(0.1)
    step = train.make_step(losses.ce_max_membrane, opt)
    s0 = opt.init(eqx.filter(model, snnx.trainable_spec(model)))
    m_masked, _, info = step(model, s0, xb, yb, weights=jnp.array([1.0, 1.0, 0.0, 0.0]))
    m_sub, _, info_sub = step(model, s0, xb[:2], yb[:2])
    assert eqx.tree_equal(_params(m_masked), _params(m_sub), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(info["loss"], info_sub["loss"], rtol=1e-6)
    assert float(info["count"]) == 2.0
    with pytest.raises(ValueError, match=r"`xb` must be a batch"):
        step(model, s0, xb[0], yb)


def test_regulariser_lowers_hidden_rate():
    x, y = _data()
    _, h0 = _fit(_model(), (x, y), epochs=3)
    _, h1 = _fit(_model(), (x, y), epochs=3,
                 regulariser=lambda recs: 10.0 * losses.rate_upper(recs[1], 0.0, per="layer"))
    assert h1["rates"][-1][1] < h0["rates"][-1][1]


def test_progress_bar_prints_epoch_lines(capsys):
    x, y = _data()
    _fit(_model(), (x, y), epochs=1, progress=True)
    err = capsys.readouterr()
    assert "epoch 1/1: loss" in err.out + err.err


def test_bad_inputs_raise_before_compiling():
    x, y = _data()
    m = _model()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        _fit(m, (x, y + 1))
    with pytest.raises(ValueError, match="has 32 inputs but labels of shape"):
        _fit(m, (x, y[:-1]))
    with pytest.raises(ValueError, match="is empty"):
        _fit(m, (x[:0], y[:0]))
    with pytest.raises(TypeError, match=r"must be a pair `\(xs, ys\)`"):
        _fit(m, x)
    with pytest.raises(ValueError, match="larger than the 32 training samples"):
        _fit(m, (x, y), batch_size=64)
    with pytest.raises(ValueError, match="`epochs` must be a positive int"):
        _fit(m, (x, y), epochs=0)
    with pytest.raises(ValueError, match="`last_batch`"):
        _fit(m, (x, y), last_batch="keep")
    with pytest.raises(ValueError, match="`resume=True` needs a `checkpoint`"):
        _fit(m, (x, y), resume=True)
    with pytest.raises(ValueError, match=r"per-step shape"):
        _fit(m, (x, y), eval_data=(x[..., :2], y))
    with pytest.raises(TypeError, match="optax GradientTransformation"):
        train.fit(m, losses.ce_rate, "adam", (x, y), epochs=1, key=jax.random.key(0))
    flat = snnx.Sequential([eqx.nn.Linear(D, 4, key=jax.random.key(0)), snnx.LIF(tau=2.0),
                            lambda h: h.reshape(2, 2)])
    with pytest.raises(ValueError, match=r"one\s+vector of classes"):
        _fit(flat, (x, y))


def test_one_full_batch_epoch_matches_hand_written_sgd():
    """With batch_size = N the shuffle does not matter: one epoch is one SGD step on the mean
    loss, which we compute independently with jax.grad."""
    x, y = _data()
    _assert_hidden_spikes(_model(), x)
    model0 = _model()
    model, _ = train.fit(model0, losses.ce_rate, optax.sgd(0.5), (x, y), epochs=1,
                         key=jax.random.key(3), batch_size=N, progress=False)

    params, static = eqx.partition(model0, snnx.trainable_spec(model0))

    def mean_loss(p):
        m = eqx.combine(p, static)
        outs = jax.vmap(lambda s: snnx.run(m, s)[0])(jnp.asarray(x, jnp.float32))
        return losses.ce_rate(outs, jnp.asarray(y))

    grads = jax.grad(mean_loss)(params)
    expected = eqx.combine(jax.tree.map(lambda p, g: p - 0.5 * g, params, grads), static)
    assert eqx.tree_equal(_params(model), _params(expected), rtol=1e-5, atol=1e-6)


def test_float_targets_with_mse_count():
    x, y = _data()
    targets = np.eye(C, dtype=np.float32)[y] * 0.8 + 0.1  # target rates per step
    model = snnx.Sequential([eqx.nn.Linear(D, 8, key=jax.random.key(0)),
                             snnx.LIF(tau=3.0, v_threshold=0.5),
                             eqx.nn.Linear(8, C, key=jax.random.key(1)),
                             snnx.LIF(tau=3.0, v_threshold=0.5)])
    _, hist = train.fit(model, losses.mse_count, optax.adam(5e-2), (x, targets), epochs=4,
                        key=jax.random.key(0), batch_size=8, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["accuracy"] == [None] * 4  # no class labels, no accuracy
    with pytest.raises(ValueError, match=r"float targets must have shape \(N, 2\)"):
        train.fit(model, losses.mse_count, optax.adam(5e-2), (x, targets[:, :1]), epochs=1,
                  key=jax.random.key(0), batch_size=8, progress=False)


def test_evaluate_counts_every_sample_and_checks_labels():
    x, y = _data(n=13)
    model = _model()
    ev = train.evaluate(model, (x, y), losses.ce_max_membrane, batch_size=5)  # 5 + 5 + 3
    outs = jax.vmap(lambda s: snnx.run(model, s)[0])(jnp.asarray(x, jnp.float32))
    assert ev["n"] == 13
    assert ev["loss"] == pytest.approx(float(losses.ce_max_membrane(outs, jnp.asarray(y))),
                                       rel=1e-5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        train.evaluate(model, (x, y - 1))


def test_stochastic_flag_passes_keys_without_changing_a_deterministic_model():
    x, y = _data()
    _assert_hidden_spikes(_model(), x)
    m0, _ = _fit(_model(), (x, y), epochs=1)
    m1, _ = _fit(_model(), (x, y), epochs=1, stochastic=True)
    assert eqx.tree_equal(_params(m0), _params(m1), rtol=1e-6, atol=1e-7)


class _RecordingMeter(train.AbstractProgressMeter):
    """A user's progress meter: records what `fit` tells it."""

    def __init__(self):
        self.events = []

    def start(self, epochs, first_epoch, scan_epoch):
        self.events.append(("start", epochs, first_epoch, scan_epoch))

    def epoch_start(self, epoch, epochs, n_batches):
        self.events.append(("epoch", epoch, n_batches))

    def batch(self, index, n_batches, info, accuracy):
        self.events.append(("batch", index, accuracy))

    def epoch_end(self, line):
        self.events.append(("end", line.split(":")[0]))

    def close(self):
        self.events.append(("close",))


def test_history_object_and_progress_meter():
    meter = _RecordingMeter()
    model, hist = _fit(_model(), _data(), epochs=2, progress=meter, eval_data=_data(seed=3))
    assert isinstance(hist, snnx.History)
    assert hist.loss == hist["loss"] and len(hist.loss) == hist.epochs == 2
    assert "opt_state" not in hist and hist.opt_state is not None
    assert set(hist.as_dict()) == set(hist) - {"stopped"}
    # the final optimiser state continues training exactly where it stopped
    _, cont = _fit(model, _data(), epochs=1, opt_state=hist.opt_state, progress=False)
    assert np.isfinite(cont["loss"][0])
    assert meter.events[0] == ("start", 2, 0, False) and meter.events[-1] == ("close",)
    assert [e for e in meter.events if e[0] == "epoch"] == [("epoch", 0, 4), ("epoch", 1, 4)]
    assert sum(e[0] == "batch" for e in meter.events) == 8
    assert ("end", "epoch 2/2") in meter.events
    with pytest.raises(AttributeError, match="History has no 'los'"):
        hist.los  # noqa: B018
    with pytest.raises(TypeError, match="`progress` must be True, False or an"):
        _fit(_model(), _data(), epochs=1, progress="bar")


def test_step_config_is_static_and_shares_programs():
    from snnx.train._step import make_config, programs

    a = make_config(losses.ce_max_membrane, _OPT, None, "auto", {"unroll": 2}, False, True)
    b = make_config(losses.ce_max_membrane, _OPT, None, "auto", {"unroll": 2}, False, True)
    assert a == b and hash(a) == hash(b) and programs(a) is programs(b)
    c = make_config(losses.ce_max_membrane, _OPT, None, "auto", {"unroll": 3}, False, True)
    assert programs(c) is not programs(a)
    assert jax.tree.leaves(a) == []  # every field is static
    with pytest.raises(TypeError, match="`optimizer` must be an optax"):
        make_config(losses.ce_max_membrane, "adam", None, "auto", {}, False, True)
