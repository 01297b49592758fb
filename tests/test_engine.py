"""The planner and the layer contract: declared all-steps forms, graphs, refused requests."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

import snnx
from snnx.engine import all_steps_form


class RunningSum(snnx.AbstractStatefulLayer, snnx.AbstractAllSteps):
    """A user's layer: y_t = s_{t-1} + x_t, with an all-steps form (a cumulative sum)."""

    scale: jax.Array
    calls: list = eqx.field(static=True)

    def init_state(self, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype)

    def __call__(self, x, state, *, key=None):
        y = state + self.scale * x
        return y, y

    def all_steps(self, xs, state, *, keys, context):
        self.calls.append(xs.shape)  # at trace time: proves the planner took this path
        ys = state[None] + jnp.cumsum(self.scale * xs, axis=0)
        trace = ys if context.record else None
        return ys, ys[-1], trace


def _spikes(key, shape, p=0.3):
    return jax.random.bernoulli(key, p, shape).astype(jnp.float32)


def test_user_layer_with_all_steps_form_runs_layer_major(getkey):
    calls = []
    summer = RunningSum(jnp.float32(0.5), calls)
    model = snnx.Sequential([eqx.nn.Linear(6, 4, key=getkey()), summer, snnx.LIF(3.0),
                             eqx.nn.Linear(4, 2, key=getkey()), snnx.LI(3.0)])
    xs = _spikes(getkey(), (20, 6))
    layer, s_layer = snnx.run(model, xs)
    assert calls == [(20, 4)]  # the declared form ran once, over all 20 steps
    step, s_step = snnx.run(model, xs, mode="step")
    np.testing.assert_allclose(layer, step, rtol=1e-5, atol=1e-6)
    assert eqx.tree_equal(s_layer, s_step, rtol=1e-5, atol=1e-6)
    _, _, recs = snnx.run(model, xs, record=True)
    _, _, recs_step = snnx.run(model, xs, record=True, mode="step")
    np.testing.assert_allclose(recs[1].state, recs_step[1].state, rtol=1e-5, atol=1e-6)
    rate = float(jnp.mean(recs[2].output))
    assert 0.05 < rate < 0.95, rate  # the compared network spikes

    def loss(m, mode):
        return jnp.sum(snnx.run(m, xs, mode=mode)[0] ** 2)

    g_layer = eqx.filter_grad(loss)(model, "layer")
    g_step = eqx.filter_grad(loss)(model, "step")
    assert eqx.tree_equal(g_layer, g_step, rtol=1e-4, atol=1e-5)


def _dag(key):
    k = jax.random.split(key, 3)
    return snnx.Graph(
        {"a": eqx.nn.Linear(5, 8, key=k[0]), "b": eqx.nn.Linear(5, 8, key=k[1]),
         "lif": snnx.LIF(4.0), "out": eqx.nn.Linear(8, 3, key=k[2]), "li": snnx.LI(4.0)},
        [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "out"),
         ("out", "li"), ("li", "output")],
    )


@pytest.mark.parametrize("x64", [False, True])
def test_feedforward_graph_runs_layer_major_by_default(getkey, x64):
    graph, xs = _dag(getkey()), 6.0 * _spikes(getkey(), (16, 5), 0.5)
    with enable_x64(x64):
        auto_jaxpr = str(jax.make_jaxpr(lambda x: snnx.run(graph, x)[0])(xs))
        step_jaxpr = str(jax.make_jaxpr(lambda x: snnx.run(graph, x, mode="step")[0])(xs))
        # node-major: one scan per stateful node, the Linears outside them; step-major: one
        assert auto_jaxpr.count("scan[") == 2 and step_jaxpr.count("scan[") == 1
        auto, s_auto = snnx.run(graph, xs)
        step, s_step = snnx.run(graph, xs, mode="step")
    np.testing.assert_allclose(auto, step, rtol=1e-5, atol=1e-6)
    assert eqx.tree_equal(s_auto, s_step, rtol=1e-5, atol=1e-6)
    a, b = graph.nodes["a"], graph.nodes["b"]
    current = jax.vmap(a)(xs) + jax.vmap(b)(xs)
    rate = float(jnp.mean(snnx.run(graph.nodes["lif"], current)[0]))
    assert 0.02 < rate < 0.98, rate  # the compared network spikes


def test_feedforward_graph_takes_events_and_remat(getkey):
    graph, xs = _dag(getkey()), _spikes(getkey(), (24, 5), 0.2)
    ref, _ = snnx.run(graph, xs, mode="step")
    ev = snnx.SpikeEvents.from_dense(xs)
    np.testing.assert_allclose(snnx.run(graph, ev)[0], ref, rtol=1e-5, atol=1e-6)
    for remat in (True, 5, snnx.Remat(every=7)):
        np.testing.assert_allclose(snnx.run(graph, xs, remat=remat)[0], ref, rtol=1e-5,
                                   atol=1e-6)


def test_graph_inside_sequential_and_feedback_graph_inside_sequential(getkey):
    fb = snnx.Graph({"lif": snnx.LIF(tau=2.0), "w": eqx.nn.Linear(8, 8, key=getkey())},
                    [("input", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")])
    for inner in (_dag(getkey()), fb):
        d_in = 5 if "a" in inner.nodes else 8
        model = snnx.Sequential([eqx.nn.Linear(4, d_in, key=getkey()), inner])
        xs = 3.0 * _spikes(getkey(), (12, 4), 0.5)
        np.testing.assert_allclose(snnx.run(model, xs)[0], snnx.run(model, xs, mode="step")[0],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("T", [3, 11])
def test_delay_all_steps_form_equals_ring_buffer(getkey, dtype, T):
    with enable_x64(dtype == jnp.float64):
        delay = snnx.Delay(jnp.array([0.0, 1.0, 4.0]), dt=1.0)
        xs = jax.random.normal(getkey(), (T, 3), dtype)
        state = delay.init_state((3,), dtype)
        # start from a buffer that already holds inputs, at a non-zero position
        state, _ = jax.lax.scan(lambda s, x: (delay(x, s)[1], None), state,
                                jax.random.normal(getkey(), (7, 3), dtype))
        ys, final = snnx.run(delay, xs, state, mode="layer")
        ys_s, final_s = snnx.run(delay, xs, state, mode="step")
        assert ys.dtype == dtype
        assert "scan" not in str(jax.make_jaxpr(lambda x: snnx.run(delay, x, state)[0])(xs))
    np.testing.assert_array_equal(ys, ys_s)
    assert eqx.tree_equal(final, final_s)
    np.testing.assert_array_equal(ys[4:, 2], xs[:-4, 2])  # the definition, y_t = x_{t-4}


def test_all_steps_form_table():
    lin = eqx.nn.Linear(3, 2, key=jax.random.key(0))
    assert isinstance(all_steps_form(lin), snnx.AbstractEventReader)
    assert not all_steps_form(eqx.nn.Linear("scalar", 2, key=jax.random.key(0))).has_all_steps()
    assert all_steps_form(eqx.nn.MaxPool2d(2, 2)).has_all_steps()
    assert not all_steps_form(eqx.nn.MaxPool2d(3, 1)).has_all_steps()
    assert all_steps_form(jnp.ravel) is None
    assert all_steps_form(snnx.LIF(2.0)) is None  # scanned by the planner
    assert isinstance(snnx.SparseLinear(3, 2, key=jax.random.key(0)), snnx.AbstractEventReader)


def test_contract_is_declared_not_probed(getkey):
    class DuckNeuron(eqx.Module):  # has init_state, but does not declare itself stateful
        def init_state(self, shape):
            return jnp.zeros(shape)

        def __call__(self, x, state, *, key=None):
            return x, state

    with pytest.raises(TypeError, match="does not subclass `snnx.layers.AbstractStatefulLayer`"):
        snnx.Sequential([DuckNeuron()])
    with pytest.raises(TypeError, match="Graph node 'n'.*AbstractStatefulLayer"):
        snnx.Graph({"n": DuckNeuron()}, [("input", "n"), ("n", "output")])
    with pytest.raises(TypeError, match="`model` must be stateful"):
        snnx.run(DuckNeuron(), jnp.zeros((3, 2)))
    assert isinstance(snnx.LIF(2.0), snnx.AbstractContinuousNeuron)
    assert isinstance(snnx.Sequential([snnx.LIF(2.0)]), snnx.AbstractStatefulLayer)


def test_refused_requests_raise_named_errors(getkey):
    model = snnx.Sequential([eqx.nn.Linear(3, 2, key=getkey()), snnx.LIF(2.0)])
    xs = jnp.ones((6, 3))
    for remat in (0.5, "yes", -1, [2]):
        with pytest.raises(ValueError, match="`remat` must be"):
            snnx.run(model, xs, remat=remat)
    with pytest.raises(ValueError, match="Remat `every` must be an int >= 1"):
        snnx.Remat(every=0)
    for unroll in (0, 2.5, "x", -3):
        with pytest.raises(ValueError, match="`unroll` must be an int >= 1"):
            snnx.run(model, xs, unroll=unroll)
    ev = snnx.SpikeEvents.from_dense(np.ones((6, 3)))
    with pytest.raises(TypeError, match="`x` is an `snnx.SpikeEvents`"):
        model(ev, model.init_state((3,)))
    # remat means one thing in both orders and never changes the numbers
    for remat in (True, 1, 2, 6, 100, snnx.NoRemat()):
        for mode in ("layer", "step"):
            np.testing.assert_allclose(snnx.run(model, xs, remat=remat, mode=mode)[0],
                                       snnx.run(model, xs)[0], rtol=1e-6)


def test_traced_negative_time_constant_is_an_error():
    xs = jnp.ones((5, 2))

    @jax.jit
    def out(tau):
        return snnx.run(snnx.Sequential([snnx.LIF(tau)]), xs)[0]

    assert np.all(np.isfinite(np.asarray(out(2.0))))
    with pytest.raises(Exception, match="LIF parameter `tau` must be finite and > 0"):
        jax.block_until_ready(out(-1.0))
    with pytest.raises(Exception, match="CuBaLIF parameter `tau_mem` must be finite and > 0"):
        jax.block_until_ready(jax.jit(lambda t: snnx.CuBaLIF(2.0, t).tau_mem)(0.0))


def test_readme_own_layer_example_runs_layer_major(getkey):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Your own layer", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    k1 = getkey()
    env = {"snnx": snnx, "jax": jax, "jnp": jnp, "eqx": eqx, "k1": k1}
    exec(code, env)
    model, leak = env["model"], env["Leak"]()
    xs = jax.random.normal(getkey(), (30, 700))
    s0 = leak.init_state((700,)) + 0.5
    np.testing.assert_allclose(snnx.run(leak, xs, s0, mode="layer")[0],
                               snnx.run(leak, xs, s0, mode="step")[0], rtol=1e-5, atol=1e-5)
    xb = 4.0 * jax.random.bernoulli(getkey(), 0.3, (30, 700)).astype(jnp.float32)
    layer, step = snnx.run(model, xb)[0], snnx.run(model, xb, mode="step")[0]
    np.testing.assert_allclose(layer, step, rtol=1e-5, atol=1e-5)
    assert 0.01 < float(layer.mean()) < 0.99  # the compared network spikes
    assert "scan" not in str(jax.make_jaxpr(lambda x: snnx.run(leak, x, s0)[0])(xs))


def test_conv_stack_runs_in_the_input_dtype(dtype, getkey):
    # the state and shape probe follow the input's dtype: a float64 Conv used to be refused
    # because the shapes were propagated with a float32 probe
    conv = eqx.nn.Conv2d(1, 2, 3, key=getkey(), dtype=dtype)
    model = snnx.Sequential([conv, snnx.LIF(5.0), snnx.Flatten()])
    xs = jax.random.uniform(getkey(), (4, 1, 6, 6), dtype) * 3.0
    ys, state = snnx.run(model, xs, mode="layer")
    ys_step, _ = snnx.run(model, xs, mode="step")
    assert ys.dtype == dtype and jax.tree.leaves(state)[0].dtype == dtype
    # reference: the convolution applied frame by frame, then the neuron scan
    currents = jax.vmap(conv)(xs)
    lif = model.layers[1]
    _, spikes = jax.lax.scan(lambda s, c: lif(c, s)[::-1], lif.init_state(currents.shape[1:],
                             dtype), currents)
    np.testing.assert_array_equal(ys, spikes.reshape(4, -1))
    np.testing.assert_array_equal(ys_step, ys)
