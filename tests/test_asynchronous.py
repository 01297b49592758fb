"""snnx.asynchronous: unlayered execution against the layered network, a naive dense
implementation, the schedules' invariants, BPTT through it, and bad inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snnx
from snnx.asynchronous import (
    ByMembrane,
    Random,
    Unlayered,
    default_micro_steps,
    spikes_per_sample,
    steps_to_decision,
)


def _network(key, sizes=(12, 16, 8, 4), gain=20.0, readout="li", dtype=jnp.float32):
    """A Linear + LIF stack driven hard enough that every layer fires."""
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = eqx.nn.Linear(a, b, key=keys[i], dtype=dtype)
        if i < len(sizes) - 2:
            lin = eqx.tree_at(lambda m: m.weight, lin, lin.weight * gain)
        elif readout == "lif":  # excitatory output weights: the output layer fires
            lin = eqx.tree_at(lambda m: m.weight, lin, jnp.abs(lin.weight) * gain)
        layers.append(lin)
        last = i == len(sizes) - 2
        layers.append(snnx.LI(tau=5.0) if last and readout == "li" else snnx.LIF(tau=5.0))
    return snnx.Sequential(layers)


def _inputs(key, T=10, n=12, p=0.5, dtype=jnp.float32):
    return (jax.random.uniform(key, (T, n)) < p).astype(dtype)


def _layer_spikes(records, seq):
    """Hidden (and LIF output) spikes of a layered run, concatenated like the state."""
    outs = [np.asarray(r.output) for layer, r in zip(seq.layers, records)
            if isinstance(layer, snnx.LIF)]
    return np.concatenate(outs, axis=-1)


def test_layered_equality_and_gradients_at_full_group(getkey, dtype):
    # At F = N the schedule does not matter (every queued spike goes in the next
    # micro-step): spikes, outputs and BPTT gradients equal the layered network's.
    seq = _network(getkey(), dtype=dtype)
    xs = _inputs(getkey(), dtype=dtype)
    target = jax.random.normal(getkey(), (10, 4), dtype)
    net = Unlayered(seq, group_size=24, schedule=ByMembrane())

    def loss(m):
        ys, state, recs = snnx.run(m, xs, record=True)
        return jnp.sum((ys - target) ** 2), (ys, state, recs)

    (_, (ys, _, recs)), g_seq = jax.value_and_grad(loss, has_aux=True)(seq)
    (_, (yu, su, ru)), g_net = jax.value_and_grad(loss, has_aux=True)(net)
    layered = _layer_spikes(recs, seq)
    assert layered.sum() > 15  # the comparison is not vacuous
    np.testing.assert_array_equal(np.asarray(ru[0].state.spikes)[:, :24], layered)
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(yu, ys, rtol=tol, atol=tol)
    assert float(su.pending.sum()) == 0.0
    rtol = 1e-4 if dtype == jnp.float32 else 1e-10
    for i in (0, 2, 4):
        for name in ("weight", "bias"):
            a = getattr(g_seq.layers[i], name)
            b = getattr(g_net.layers[i], name)
            assert float(jnp.max(jnp.abs(a))) > 0
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(a))))


def test_layered_equality_lif_output_step_major(getkey, dtype):
    seq = _network(getkey(), sizes=(12, 16, 3), readout="lif", dtype=dtype)
    xs = _inputs(getkey(), dtype=dtype)
    ys, _, recs = snnx.run(seq, xs, record=True)
    net = Unlayered(seq, group_size=16, schedule=Random())
    yu, _, ru = snnx.run(net, xs, record=True)
    assert float(ys.sum()) > 3
    np.testing.assert_array_equal(np.asarray(ru[0].state.spikes), _layer_spikes(recs, seq))
    np.testing.assert_array_equal(yu, ys)
    ys_step, _ = snnx.run(net, xs, mode="step")  # one-step calls = the all-steps form
    np.testing.assert_array_equal(ys_step, yu)


def _naive(net, seq, xs, schedule, seed=0):
    """The unlayered algorithm written out with the block weight matrix (float64 NumPy)."""
    W, b = (np.asarray(a, np.float64) for a in net.block_weights())
    sizes, n_in = net.sizes, net.n_in
    N, total, H = sum(sizes[:-1]), sum(sizes), len(sizes) - 1
    bounds = np.cumsum((0,) + sizes)
    layer_of = np.repeat(np.arange(len(sizes)), sizes)
    beta = np.exp(-1.0 / 5.0)  # every neuron here has tau = 5, dt = 1, r = 1
    drive = 1 - beta
    v, pending, pre = np.zeros(total), np.zeros(total), np.zeros(total)
    outs, all_spikes = [], []
    for t, x in enumerate(np.asarray(xs, np.float64)):
        v = beta * v + drive * (b + np.concatenate([W[:sizes[0], :n_in] @ x,
                                                    np.zeros(total - sizes[0])]))
        fired = np.zeros(total)

        def evaluate(layers, fired):
            nonlocal v
            for layer in layers:
                sl = slice(bounds[layer], bounds[layer + 1])
                s = (v[sl] > 1.0) & (fired[sl] == 0)
                if layer < H:
                    pending[sl] += s
                    pre[sl] = np.where(s, v[sl], pre[sl])
                v[sl] = v[sl] - s * 1.0
                fired[sl] += s

        evaluate([0], fired)
        evaluated = {0}
        step_key = jax.random.fold_in(jax.random.key(seed), t)
        for k in range(net.micro_steps):
            queued = pending[:N] > 0
            if isinstance(schedule, Random):
                prio = np.asarray(jax.random.uniform(jax.random.fold_in(step_key, k), (N,),
                                                     xs.dtype), np.float64)
            else:
                prio = pre[:N]
            order = np.argsort(-np.where(queued, prio, -np.inf), kind="stable")
            group = np.zeros(N, bool)
            group[order[:net.group_size]] = True
            sent = np.where(group & queued, pending[:N], 0.0)
            pending[:N] -= sent
            v += drive * (W[:, n_in:n_in + N] @ sent)
            got = {layer_of[i] for i in np.flatnonzero(sent)}
            reached = [layer + 1 for layer in range(H) if layer in got or layer in evaluated]
            evaluate([layer for layer in reached if layer < H or net.layers[-1] is not None
                      and isinstance(net.layers[-1], snnx.LIF)], fired)
            evaluated = {layer for layer in reached if layer < H}
        outs.append(v[bounds[-2]:].copy())
        all_spikes.append(fired.copy())
    return np.stack(outs), np.stack(all_spikes)


@pytest.mark.parametrize("schedule", [Random(), ByMembrane()])
def test_small_groups_match_naive_block_matrix(dtype, schedule):
    k1, k2 = jax.random.split(jax.random.key(5))
    seq = _network(k1, gain=40.0, dtype=dtype)
    xs = _inputs(k2, T=8, dtype=dtype)
    net = Unlayered(seq, group_size=2, schedule=schedule)
    yu, _, ru = snnx.run(net, xs, record=True)
    ref_out, ref_spikes = _naive(net, seq, xs, schedule)
    spikes = np.asarray(ru[0].state.spikes)
    assert ref_spikes.sum() > 20
    np.testing.assert_array_equal(spikes, ref_spikes)
    tol = 1e-4 if dtype == jnp.float32 else 1e-10
    np.testing.assert_allclose(yu, ref_out, rtol=tol, atol=tol)
    # the asynchronous run is not the layered one
    ys = snnx.run(seq, xs)[0]
    assert float(jnp.max(jnp.abs(yu - ys))) > 1e-3


def test_random_schedule_delivers_every_spike_once(getkey):
    seq = _network(getkey())
    xs = _inputs(getkey(), T=12)
    F = 3
    net = Unlayered(seq, group_size=F, schedule=Random())
    _, state, recs = snnx.run(net, xs, record=True, key=getkey())
    st = recs[0].state
    delivered = np.asarray(st.delivered)  # (T, K, N)
    fired = np.asarray(st.spikes)[:, :24]
    # every spike of a step reaches its targets exactly once, within the step
    np.testing.assert_array_equal(delivered.sum(axis=1), fired)
    assert float(state.pending.sum()) == 0.0
    per_micro = delivered.sum(axis=2)
    assert per_micro.max() <= F
    assert per_micro.max() == F  # groups were full where the queue allowed
    assert fired.sum() > 30
    assert delivered.shape[1] == default_micro_steps(net.sizes, F) == 24 // F + 2


def test_random_group_is_uniform(getkey):
    # One hidden layer, all 16 neurons fire at step 0; the first group of 4 is uniform.
    k1, k2 = jax.random.split(getkey())
    seq = snnx.Sequential([eqx.nn.Linear(4, 16, key=k1), snnx.LIF(tau=5.0),
                           eqx.nn.Linear(16, 2, key=k2), snnx.LI(tau=5.0)])
    seq = eqx.tree_at(lambda m: (m.layers[0].weight, m.layers[0].bias), seq,
                      (jnp.zeros((16, 4)), jnp.full((16,), 50.0)))
    net = Unlayered(seq, group_size=4, schedule=Random())
    xs = jnp.zeros((1, 4))
    keys = jax.random.split(getkey(), 200)
    first = jax.vmap(lambda k: snnx.run(net, xs, record=True, key=k)[2][0].state.delivered[
        0, 0])(keys)
    first = np.asarray(first)
    assert np.all(first.sum(axis=1) == 4)
    freq = first.mean(axis=0)
    # binomial(200, 1/4): standard deviation 0.031 per neuron
    assert np.all(np.abs(freq - 0.25) < 0.15), freq
    assert len({tuple(row) for row in first}) > 60  # not one fixed order


def test_membrane_schedule_picks_top_group(getkey):
    k1, k2 = jax.random.split(getkey())
    seq = snnx.Sequential([eqx.nn.Linear(6, 20, key=k1), snnx.LIF(tau=5.0),
                           eqx.nn.Linear(20, 3, key=k2), snnx.LI(tau=5.0)])
    seq = eqx.tree_at(lambda m: m.layers[0].weight, seq, seq.layers[0].weight * 30)
    net = Unlayered(seq, group_size=4, schedule=ByMembrane())
    xs = _inputs(getkey(), T=6, n=6, p=0.7)
    _, _, recs = snnx.run(net, xs, record=True)
    st = recs[0].state
    checked = 0
    for t in range(xs.shape[0]):
        fired = np.asarray(st.spikes[t, :20]) > 0
        pre = np.asarray(st.pre_spike[t, :20])
        order = np.argsort(-np.where(fired, pre, -np.inf), kind="stable")
        sent = np.asarray(st.delivered[t])
        for k in range(sent.shape[0]):  # one hidden layer: the queue is filled once
            expect = np.zeros(20)
            expect[order[4 * k:4 * (k + 1)]] = 1
            expect = expect * fired
            np.testing.assert_array_equal(sent[k], expect)
            checked += int(expect.sum())
    assert checked > 20


def test_training_through_unlayered(getkey):
    seq = _network(getkey(), sizes=(12, 16, 2), gain=3.0)
    net = Unlayered(seq, group_size=4, schedule=ByMembrane())
    k = getkey()
    data_x = (jax.random.uniform(k, (32, 6, 12)) < 0.3).astype(jnp.float32)
    labels = (jnp.arange(32) % 2).astype(jnp.int32)
    data_x = data_x.at[:, :, :6].multiply((labels == 0)[:, None, None].astype(jnp.float32))
    trained, history = snnx.fit(net, snnx.losses.ce_max_membrane, optax.adam(2e-2),
                                (data_x, labels), epochs=4, batch_size=16, key=getkey(),
                                progress=False)
    assert isinstance(trained, Unlayered)
    assert history["loss"][-1] < history["loss"][0]
    result = snnx.evaluate(trained, (data_x, labels), snnx.losses.ce_max_membrane)
    assert 0.0 <= result["accuracy"] <= 1.0


def test_steps_to_decision_closed_form():
    # class 1 leads from step 2 on; class 0 leads steps 0-1; sample 2 decided at once
    out = np.zeros((3, 5, 2))
    out[0, :, 0] = [1, 1, 0, 0, 0]
    out[0, :, 1] = [0, 0, 2, 0, 0]
    out[1, :, 0] = [1, 0, 0, 0, 0]
    out[1, :, 1] = [0, 0, 0, 0, 3]
    out[2, :, 1] = [1, 0, 0, 0, 0]
    np.testing.assert_array_equal(steps_to_decision(out), [3, 5, 1])
    np.testing.assert_array_equal(steps_to_decision(out.transpose(1, 0, 2), time_axis=0),
                                  [3, 5, 1])


def test_spikes_per_sample_and_block_weights(getkey):
    seq = _network(getkey())
    xs = _inputs(getkey())
    net = Unlayered(seq, group_size=24)
    _, _, r_seq = snnx.run(seq, xs, record=True)
    batched = jax.vmap(lambda x: snnx.run(net, x, record=True)[2])(jnp.stack([xs, xs]))
    r_net = jax.tree.map(lambda a: a[0], batched)
    direct = float(sum(np.asarray(r_seq[i].output).sum() for i in (1, 3)))
    assert spikes_per_sample(seq, r_seq) == spikes_per_sample(net, r_net) == direct > 0
    assert spikes_per_sample(net, batched, batched=True) == direct
    # the block matrix reproduces every Linear layer
    W, b = net.block_weights()
    s = jnp.concatenate([xs[0], jnp.asarray(r_net[0].state.spikes[0])])
    cur = W @ s + b
    h = np.asarray(r_seq[1].output[0])
    np.testing.assert_allclose(cur[:16], seq.layers[0](xs[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cur[16:24], seq.layers[2](h), rtol=1e-5, atol=1e-5)


def test_too_few_micro_steps_carry_spikes_and_warn(getkey):
    seq = _network(getkey())
    xs = _inputs(getkey())
    with pytest.warns(UserWarning, match="micro_steps=1"):
        net = Unlayered(seq, group_size=2, micro_steps=1)
    _, state, recs = snnx.run(net, xs, record=True)
    carried = np.asarray(recs[0].state.pending).sum(axis=1)
    assert carried.max() > 0  # counted, not lost
    assert float(state.pending.sum()) == carried[-1]


def test_bad_inputs(getkey):
    seq = _network(getkey())
    with pytest.raises(ValueError, match="`group_size`"):
        Unlayered(seq, group_size=0)
    with pytest.raises(ValueError, match="`group_size`.*N=24"):
        Unlayered(seq, group_size=25)
    with pytest.raises(TypeError, match="`group_size`"):
        Unlayered(seq, group_size=2.5)
    with pytest.raises(TypeError, match="`schedule`"):
        Unlayered(seq, group_size=2, schedule="random")
    with pytest.raises(ValueError, match="`micro_steps`"):
        Unlayered(seq, group_size=2, micro_steps=0)
    with pytest.raises(TypeError, match="`seed`"):
        Unlayered(seq, group_size=2, seed=1.5)
    with pytest.raises(TypeError, match="`model`"):
        Unlayered(seq.layers[0], group_size=2)
    with pytest.raises(ValueError, match="`model`.*alternate"):
        Unlayered(seq.layers[:3], group_size=2)
    k = getkey()
    alif = snnx.Sequential([eqx.nn.Linear(3, 4, key=k), snnx.ALIF(tau=5.0, tau_adapt=20.0),
                            eqx.nn.Linear(4, 2, key=k), snnx.LI(tau=5.0)])
    with pytest.raises(TypeError, match="`model` layer 1 must be an `snnx.LIF`"):
        Unlayered(alif, group_size=2)
    conv = [eqx.nn.Conv1d(1, 2, 3, key=k)] + list(seq.layers[1:])
    with pytest.raises(TypeError, match="`model` layer 0 must be an `eqx.nn.Linear`"):
        Unlayered(conv, group_size=2)
    bad = list(seq.layers)
    bad[2] = eqx.nn.Linear(5, 8, key=k)
    with pytest.raises(ValueError, match="`model` layer 2.*5 inputs.*16 neurons"):
        Unlayered(bad, group_size=2)
    delayed = list(seq.layers)
    delayed[1] = snnx.LIF(tau=5.0, reset_delay=True)
    with pytest.raises(ValueError, match="`reset_delay=True`"):
        Unlayered(delayed, group_size=2)
    net = Unlayered(seq, group_size=2)
    with pytest.raises(ValueError, match="`shape=.*7"):
        net.init_state((7,))
    with pytest.raises(ValueError, match="`outputs`"):
        steps_to_decision(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`model`"):
        spikes_per_sample(seq, ())
