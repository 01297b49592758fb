"""Bad and lossy input to training, options, events and ported models: named errors, never
a silent wrong answer (issue 13). Files and checkpoints: test_bad_inputs_files.py; continuous
time: test_ode_reliability.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx import losses

N, T, D, C = 16, 5, 4, 2


def _data(seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(N) % C).astype(np.int32)
    x = (rng.random((N, T, D)) < np.where(np.repeat(np.eye(C), D // C, 1)[y], 0.8, 0.1)[:, None])
    return x.astype(np.float32), y


def _model(key=jax.random.key(0)):
    k1, k2 = jax.random.split(key)
    return snnx.Sequential([eqx.nn.Linear(D, 8, key=k1), snnx.LIF(3.0, v_threshold=0.5),
                            eqx.nn.Linear(8, C, key=k2), snnx.LI(3.0)])


_OPT = optax.adam(5e-2)


def _fit(data, **kw):
    kw.setdefault("epochs", 1)
    kw.setdefault("key", jax.random.key(1))
    return snnx.fit(_model(), losses.ce_max_membrane, kw.pop("opt", _OPT), data, batch_size=4,
                    progress=False, **kw)


# ----------------------------------------------------------------------- training data


def test_non_finite_data_is_found_before_training():
    x, y = _data()
    x[11, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"`train_data` inputs contain non-finite .* 1 of 16 "
                                         r"samples, the first at index 11"):
        _fit((x, y))
    good = _data()
    with pytest.raises(ValueError, match=r"`eval_data` inputs contain non-finite"):
        _fit(good, eval_data=(x, y))
    with pytest.raises(ValueError, match=r"`data` inputs contain non-finite"):
        snnx.evaluate(_model(), (np.where(np.isnan(x), np.inf, x), y))
    targets = np.eye(C, dtype=np.float32)[y]
    targets[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"`train_data` targets contain non-finite"):
        snnx.fit(_model(), losses.mse_count, _OPT, (good[0], targets), epochs=1,
                 key=jax.random.key(0), progress=False)


def _sgd_until(k, then):
    """SGD whose updates from step k on (0-based) are `then` (NaN, or 0 to stop)."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(grads, count, params=None):
        late = count >= k
        return jax.tree.map(lambda g: jnp.where(late, then, -1e-2 * g), grads), count + 1

    return optax.GradientTransformation(init, update)


def test_non_finite_update_stops_fit_with_the_last_finite_model():
    with pytest.warns(UserWarning, match=r"non-finite parameter update \(loss .*\) at epoch 1, "
                                         r"step 3 of 4"):
        model, hist = _fit(_data(), opt=_sgd_until(2, jnp.nan))
    assert "step 3" in hist["stopped"]
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in leaves)
    # the returned model is the one after two good steps: an epoch whose later updates are 0
    ref, _ = _fit(_data(), opt=_sgd_until(2, 0.0))
    assert eqx.tree_equal(model, ref) and not eqx.tree_equal(model, _model())


def test_make_step_refuses_bad_labels_and_foreign_opt_state():
    model, (x, y) = _model(), _data()
    step = snnx.make_step(losses.ce_max_membrane, _OPT)
    state = _OPT.init(eqx.filter(model, snnx.trainable_spec(model)))
    _, _, info = step(model, state, x[:4], y[:4])
    assert np.isfinite(float(info["loss"]))
    with pytest.raises(Exception, match=r"`yb` labels must lie in \[0, 2\)"):
        jax.block_until_ready(step(model, state, x[:4], jnp.array([0, 1, 2, 0]))[2]["loss"])
    foreign = _OPT.init(eqx.filter(model, eqx.is_inexact_array))
    with pytest.raises(ValueError, match=r"`opt_state` does not match the trainable"):
        step(model, foreign, x[:4], y[:4])


@pytest.mark.parametrize("key", [0, None, "seed", np.zeros(3, np.uint32)])
def test_fit_key_must_be_a_prng_key(key):
    with pytest.raises(TypeError, match=r"`key` must be a JAX PRNG key"):
        _fit(_data(), key=key)


@pytest.mark.parametrize("kw, arg", [({"unroll": 0}, "unroll"), ({"unroll": 2.5}, "unroll"),
                                     ({"unroll": "x"}, "unroll"), ({"remat": 0.5}, "remat"),
                                     ({"remat": "yes"}, "remat"), ({"remat": -2}, "remat")])
def test_bad_run_options_are_named_before_training(kw, arg):
    with pytest.raises(ValueError, match=f"`{arg}` must be"):
        _fit(_data(), run_kwargs=kw)


# ----------------------------------------------------------------------- events


def test_duplicate_events_count_twice_in_both_paths():
    index = jnp.array([[[1, 1, 3], [0, 4, 4]]])  # (1, T=2, 3): input 1 twice at step 0
    ev = snnx.SpikeEvents(index, 4)
    dense = ev.to_dense()
    np.testing.assert_array_equal(dense[0], [[0, 2, 0, 1], [1, 0, 0, 0]])
    w = jax.random.normal(jax.random.key(0), (3, 4))
    np.testing.assert_allclose(snnx.events.project(ev, w), dense @ w.T, rtol=1e-6, atol=1e-6)


def test_out_of_range_events_under_jit_raise():
    @jax.jit
    def dense(index):
        return snnx.SpikeEvents(index, 4).to_dense()

    ok = jnp.array([[0, 4], [2, 3]])
    np.testing.assert_array_equal(dense(ok), [[1, 0, 0, 0], [0, 0, 1, 1]])
    with pytest.raises(Exception, match=r"`index` values must lie in \[0, n_in=4\]"):
        jax.block_until_ready(dense(jnp.array([[0, 5], [2, 3]])))
    with pytest.raises(Exception, match=r"`index` values must lie in \[0, n_in=4\]"):
        jax.block_until_ready(dense(jnp.array([[0, -1], [2, 3]])))


# ----------------------------------------------------------------------- porting a peer


def _snntorch_leaky(beta, thr, xs):
    """snnTorch's `Leaky` (subtract, reset_delay=True) written from its documented update:
    reset_t = H(mem_{t-1} - thr); mem_t = beta mem_{t-1} + x_t - reset_t thr; spk_t = H(mem_t
    - thr)."""
    mem, out = np.zeros(xs.shape[1:]), []
    for x in xs:
        reset = (mem - thr > 0).astype(float)
        mem = beta * mem + x - reset * thr
        out.append((mem - thr > 0).astype(float))
    return np.array(out)


def _snntorch_synaptic(alpha, beta, thr, xs):
    syn, mem, out = np.zeros(xs.shape[1:]), np.zeros(xs.shape[1:]), []
    for x in xs:
        reset = (mem - thr > 0).astype(float)
        syn = alpha * syn + x
        mem = beta * mem + syn - reset * thr
        out.append((mem - thr > 0).astype(float))
    return np.array(out)


@pytest.mark.parametrize("x64", [False, True])
def test_reset_delay_reproduces_snntorch_spike_for_spike(x64):
    rng = np.random.default_rng(0)
    xs = rng.uniform(-0.2, 0.9, (300, 64))
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        ref = _snntorch_leaky(0.8, 1.0, xs)
        lif = snnx.LIF.from_beta(0.8, 1.0, reset_delay=True)
        ours = np.asarray(snnx.run(lif, jnp.asarray(xs, dtype))[0])
        same = np.asarray(snnx.run(snnx.LIF.from_beta(0.8, 1.0), jnp.asarray(xs, dtype))[0])
        syn_ref = _snntorch_synaptic(0.6, 0.8, 1.0, 0.5 * xs)
        cuba = snnx.CuBaLIF.from_beta(0.6, 0.8, 1.0, reset_delay=True)
        syn = np.asarray(snnx.run(cuba, jnp.asarray(0.5 * xs, dtype))[0])
    assert 0.05 < ref.mean() < 0.6
    agree = np.mean(ours == ref)
    assert agree == 1.0 and np.mean(syn == syn_ref) == 1.0
    assert np.mean(same == ref) < 0.99  # the same-step reset really differs


def test_from_beta_arguments():
    lif = snnx.CuBaLIF.from_beta(0.5, 0.9, v_reset=0.2)  # was: TypeError, multiple values
    assert float(lif.v_reset) == pytest.approx(0.2)
    assert float(snnx.LIF.from_beta(0.9, v_reset=-0.5).v_reset) == pytest.approx(-0.5)
    with pytest.raises(TypeError, match=r"LIF.from_beta sets \['v_leak'\] from the decay"):
        snnx.LIF.from_beta(0.9, v_leak=1.0)
    with pytest.raises(TypeError, match=r"CuBaLIF.from_beta sets \['r'\]"):
        snnx.CuBaLIF.from_beta(0.5, 0.9, r=2.0)
    with pytest.raises(ValueError, match=r"LIF `reset_delay=True` .* `reset_mode='subtract'`"):
        snnx.LIF(5.0, reset_mode="to_value", reset_delay=True)
    with pytest.raises(ValueError, match=r"CuBaLIF `reset_delay=True` recomputes"):
        snnx.CuBaLIF(2.0, 5.0, reset_delay=True, surrogate=snnx.spikes.EscapeNoise(0.1))


def test_recurrent_bias_is_snntorch_rleaky():
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 0.6, (80, 6))
    rec = snnx.Recurrent(snnx.LIF.from_beta(0.85, 1.0, reset_delay=True), 6,
                         key=jax.random.key(2), use_bias=True)
    rec = eqx.tree_at(lambda r: r.bias, rec, jnp.linspace(-0.1, 0.2, 6))
    w, b = np.asarray(rec.weight), np.asarray(rec.bias)
    mem, spk, ref = np.zeros(6), np.zeros(6), []
    for x in xs:  # snnTorch RLeaky: mem = beta mem + x + (W spk + b) - reset thr
        reset = (mem - 1.0 > 0).astype(float)
        mem = 0.85 * mem + x + w @ spk + b - reset
        spk = (mem - 1.0 > 0).astype(float)
        ref.append(spk)
    ours = np.asarray(snnx.run(rec, jnp.asarray(xs, jnp.float32))[0])
    assert 0.05 < np.mean(ref) < 0.8 and np.mean(ours == np.array(ref)) == 1.0
    with pytest.raises(ValueError, match="`reset_delay=True`"):
        snnx.to_nir(rec, (6,))


def test_recurrent_bias_round_trips_through_nir():
    rec = snnx.Recurrent(snnx.LIF(4.0), 5, key=jax.random.key(0), use_bias=True)
    rec = eqx.tree_at(lambda r: r.bias, rec, jnp.arange(5.0) / 10)
    back = snnx.from_nir(snnx.to_nir(rec, (5,)), dt=1.0)
    back = back.layers[0] if isinstance(back, snnx.Sequential) else back
    assert isinstance(back, snnx.Recurrent) and back.bias is not None
    xs = 2.0 * jax.random.bernoulli(jax.random.key(1), 0.4, (30, 5)).astype(jnp.float32)
    np.testing.assert_allclose(snnx.run(back, xs)[0], snnx.run(rec, xs)[0])


def test_x64_states_follow_the_computation():
    with jax.enable_x64(True):
        model = snnx.Sequential([eqx.nn.Linear(4, 6, key=jax.random.key(0)), snnx.LIF(2.0),
                                 snnx.Recurrent(snnx.CuBaLIF(2.0, 4.0), 6,
                                                key=jax.random.key(1))])
        for dtype in (jnp.float32, jnp.float64):  # was: a scan carry dtype mismatch
            xs = jnp.ones((7, 4), dtype)
            for mode in ("layer", "step"):
                ys, state = snnx.run(model, xs, mode=mode)
                assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(state))
        state = snnx.Recurrent(snnx.LIF(2.0), 3, key=jax.random.key(0)).init_state(
            (3,), jnp.float64)
        assert all(a.dtype == jnp.float64 for a in jax.tree.leaves(state))


def test_run_kwargs_and_run_key_are_checked():
    allowed = r"`run_kwargs` may set \['mode', 'unroll', 'remat', 'neuron_scan'\]"
    with pytest.raises(ValueError, match=allowed):
        _fit(_data(), run_kwargs={"record": True})
    with pytest.raises(ValueError, match=r"`run_kwargs` may set"):
        snnx.make_step(losses.ce_max_membrane, _OPT, run_kwargs={"unrol": 2})
    with pytest.raises(ValueError, match=r"`run_kwargs` may set"):
        snnx.evaluate(_model(), _data(), run_kwargs={"key": jax.random.key(0)})
    with pytest.raises(TypeError, match=r"`key` must be a JAX PRNG key"):
        snnx.run(_model(), jnp.ones((3, D)), key=3)
    model = _model()
    foreign = _OPT.init(eqx.filter(model, eqx.is_inexact_array))
    with pytest.raises(ValueError, match=r"`opt_state` does not match"):
        _fit(_data(), opt_state=foreign)


@pytest.mark.parametrize("case", ["rate", "latency", "delta", "population"])
def test_encoders_refuse_nan_also_under_jit(case):
    from snnx import encoders

    k = jax.random.key(0)
    fns = {"rate": lambda x: encoders.rate(x, 4, key=k),
           "latency": lambda x: encoders.latency(x, 4),
           "delta": lambda x: encoders.delta(x[:, None]),
           "population": lambda x: encoders.population(x, 3)}
    bad = jnp.array([0.2, jnp.nan, 0.4])
    with pytest.raises(ValueError, match=r"`xs?` must "):
        fns[case](bad)  # delta: was all zeros; population: was NaN; both silent
    with pytest.raises(Exception, match=r"`xs?` must "):
        jax.block_until_ready(jax.jit(fns[case])(bad))
    if case in ("rate", "latency"):
        with pytest.raises(Exception, match=r"`x` must lie in \[0, 1\]"):
            jax.block_until_ready(jax.jit(fns[case])(jnp.array([0.2, 1.5, 0.4])))
    assert np.all(np.isfinite(np.asarray(jax.jit(fns[case])(jnp.array([0.2, 0.9, 0.4])))))
    if case == "rate":
        with pytest.raises(TypeError, match=r"`key` must be a JAX PRNG key"):
            encoders.rate(jnp.array([0.5]), 4, key=None)
