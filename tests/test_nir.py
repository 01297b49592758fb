"""NIR interop: round trips, graphs built with the `nir` package's own constructors against
hand-computed outputs, file validity, and errors that name the node or edge."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers import Delay, Flatten, Graph, Scale, SumPool2d, Threshold
from snnx.neurons import Integrator
from snnx.nir import from_nir, to_nir

nir = pytest.importorskip("nir")

A = np.asarray


def _roundtrip(model, shape, tmp_path, **kw):
    graph = to_nir(model, shape)
    path = tmp_path / "model.nir"
    nir.write(path, graph)
    read = nir.read(path)  # type-checks the file (infer_types + check_types)
    read.infer_types()
    return from_nir(path, dt=kw.pop("dt", 1.0), **kw), read


@eqx.filter_jit
def _run(model, xs):
    # One compiled step-major scan; a model that comes back with the same structure reuses it.
    return snnx.run(model, xs, mode="step", record=True)


def _same(model, back, xs):
    """Identical outputs, and (for chains) identical outputs of every layer."""
    a, _, ra = _run(model, xs)
    b, _, rb = _run(back, xs)
    np.testing.assert_array_equal(A(a), A(b))
    if isinstance(model, snnx.Sequential) and len(ra) == len(rb):
        for x, y in zip(ra, rb):
            np.testing.assert_array_equal(A(x.output), A(y.output))
    return a, ra


# ---------------------------------------------------------------------------------------------
# Round trips snnx -> NIR file -> snnx


def test_roundtrip_every_node_type_in_a_chain(getkey, tmp_path):
    positive = eqx.nn.Linear(4, 2, use_bias=False, key=getkey())
    positive = eqx.tree_at(lambda m: m.weight, positive, jnp.abs(positive.weight))
    model = snnx.Sequential([
        eqx.nn.Linear(3, 4, key=getkey()), snnx.LIF(tau=4.0, r=4.0, v_leak=0.1),
        Scale(jnp.arange(4.0)),
        snnx.Recurrent(snnx.CuBaLIF(2.0, 5.0, r=4.0), 4, key=getkey(), init_scale=2.0),
        Delay(jnp.array([0.0, 1.0, 2.0, 3.0])),
        positive, Integrator(0.5), Threshold(0.0),
        snnx.IF(r=2.0, v_reset=-0.2, reset_mode="to_value"),
        snnx.LI(tau=3.0, method="euler"), snnx.CuBaLI(2.0, 3.0),
    ])
    back, read = _roundtrip(model, (3,), tmp_path)
    types = [type(n).__name__ for n in read.nodes.values()]
    for t in ("Affine", "LIF", "Scale", "NIRGraph", "Delay", "Linear", "I", "Threshold", "IF",
              "LI", "CubaLI"):
        assert t in types
    assert read.nodes["1"].metadata["snnx_method"] == "exact"
    assert isinstance(back, snnx.Sequential) and isinstance(back[3], snnx.Recurrent)
    assert back[9].method == "euler" and back[8].reset_mode == "to_value"
    out, rec = _same(model, back, jax.random.normal(getkey(), (25, 3)) * 3)
    for i in (1, 3, 4, 6, 7, 8, 9):  # spikes and membranes are not all zero
        assert float(jnp.abs(rec[i].output).sum()) > 0, i


def test_roundtrip_conv_net(getkey, tmp_path):
    model = snnx.Sequential([
        eqx.nn.Conv2d(2, 4, 3, padding=1, key=getkey()), snnx.LIF(tau=3.0),
        SumPool2d(2), eqx.nn.Conv2d(4, 3, 2, stride=(2, 1), dilation=(1, 2), key=getkey()),
        snnx.IF(r=15.0), eqx.nn.AvgPool2d(2, 1, padding=1), Flatten(),
        eqx.nn.Linear(3 * 3 * 3, 5, key=getkey()), snnx.CuBaLIF(2.0, 4.0, r=20.0),
        jnp.ravel, Scale(2.0),
    ])
    back, read = _roundtrip(model, (2, 8, 8), tmp_path)
    assert [type(read.nodes[str(i)]).__name__ for i in range(11)] == [
        "Conv2d", "LIF", "SumPool2d", "Conv2d", "IF", "AvgPool2d", "Flatten", "Affine",
        "CubaLIF", "Flatten", "Scale"]
    xs = (jax.random.uniform(getkey(), (6, 2, 8, 8)) < 0.5) * 4.0
    _, rec = _same(model, back, xs)
    for i in (1, 4, 8):  # LIF, IF, CuBaLIF: the gains make every spiking layer spike
        assert 0.05 < float(rec[i].output.mean()) < 0.5, i


def test_roundtrip_conv1d_groups_and_same_padding(getkey, tmp_path):
    model = snnx.Sequential([eqx.nn.Conv1d(4, 6, 4, padding="SAME", groups=2, key=getkey()),
                             snnx.LIF(tau=2.0, r=3.0)])
    graph = to_nir(model, (4, 9))
    assert graph.nodes["0"].padding == "same" and int(graph.nodes["0"].groups) == 2
    nir.write(tmp_path / "c.nir", graph)
    back = from_nir(tmp_path / "c.nir", dt=1.0)
    out, _ = _same(model, back, jax.random.normal(getkey(), (5, 4, 9)) * 3)
    assert 0.05 < float(out.mean()) < 0.5


def test_roundtrip_recurrent_and_dag_graph(getkey, tmp_path):
    inner = Graph({"fc": eqx.nn.Linear(4, 4, key=getkey()), "li": snnx.LI(tau=2.0)},
                  [("input", "fc"), ("fc", "li"), ("li", "output"), ("input", "output")])
    graph = Graph(
        {"a": eqx.nn.Linear(3, 4, key=getkey()), "b": eqx.nn.Linear(3, 4, key=getkey()),
         "lif": snnx.LIF(tau=4.0), "w_rec": eqx.nn.Linear(4, 4, key=getkey()),
         "sub": inner, "delay": Delay(2.0)},
        [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "w_rec"),
         ("w_rec", "lif"), ("lif", "sub"), ("sub", "delay"), ("delay", "output"),
         ("b", "output")],
    )
    back, read = _roundtrip(graph, (3,), tmp_path)
    assert isinstance(read.nodes["sub"], nir.NIRGraph)
    assert isinstance(back, Graph) and isinstance(back.nodes["sub"], Graph)
    assert back.feedback_edges == (("w_rec", "lif"),)
    xs = jax.random.normal(getkey(), (15, 3)) * 3
    _same(graph, back, xs)
    # Also under jit and vmap.
    xb = jax.random.normal(getkey(), (2, 6, 3)) * 3
    run = eqx.filter_jit(jax.vmap(lambda m, x: snnx.run(m, x)[0], in_axes=(None, 0)))
    np.testing.assert_array_equal(A(run(graph, xb)), A(run(back, xb)))


def test_export_single_neuron_and_file_validates(tmp_path):
    graph = to_nir(snnx.CuBaLIF(2.0, 5.0, dt=0.5), 3, dt=0.5)
    assert graph.metadata == {"source": "snnx", "dt": 0.5}
    nir.write(tmp_path / "n.nir", graph)
    read = nir.read(tmp_path / "n.nir")
    assert set(read.nodes) == {"input", "0", "output"}
    assert A(read.nodes["0"].tau_mem).tolist() == [5.0] * 3
    assert A(read.nodes["input"].input_type["input"]).tolist() == [3]
    assert read.metadata["dt"] == 0.5
    # A delay is exported as simulated: whole steps times dt.
    with pytest.warns(UserWarning, match="not whole multiples"):
        delay = Delay(np.array([0.36, 0.5]), dt=0.25)
    np.testing.assert_allclose(to_nir(delay, 2).nodes["0"].delay, [0.25, 0.5])
    with pytest.warns(UserWarning, match=r"exported by snnx from neurons with dt=0.5, but is "
                                         r"imported with `dt=1.0`"):
        from_nir(tmp_path / "n.nir", dt=1.0)


# ---------------------------------------------------------------------------------------------
# Graphs written with the nir package's constructors, against hand-computed outputs


def _lif_graph(tau, r, v_th, n=1):
    ones = np.ones(n, np.float32)
    return nir.NIRGraph.from_list(
        nir.LIF(tau=tau * ones, r=r * ones, v_leak=0 * ones, v_threshold=v_th * ones)
    )


@pytest.mark.parametrize("method", ["euler", "exact"])
def test_nir_lif_constant_input_spike_times_closed_form(method):
    # tau dv/dt = -v + r I, I constant, reset to 0: from rest, v_k = rI (1 - b^k) with
    # b = 1 - dt/tau (Euler) or exp(-dt/tau) (exact), so the k-th step spikes first where
    # v_k > v_th, and the train is periodic with that period.
    tau, r, current, v_th, dt = 10e-3, 2.0, 0.75, 1.0, 2e-3
    model = from_nir(_lif_graph(tau, r, v_th), dt=dt, method=None if method == "euler" else
                     method)
    assert isinstance(model, snnx.Sequential) and model[0].reset_mode == "to_value"
    b = 1 - dt / tau if method == "euler" else np.exp(-dt / tau)
    period = int(np.floor(np.log(1 - v_th / (r * current)) / np.log(b))) + 1
    assert period == (5 if method == "euler" else 6)  # 4.92 -> 5; T/dt = 5.49 -> 6
    ys, _ = snnx.run(model, jnp.full((20, 1), current))
    np.testing.assert_array_equal(np.flatnonzero(A(ys)[:, 0]),
                                  np.arange(period - 1, 20, period))


def test_nir_if_with_reset_value():
    # v <- v + dt r x = v + 1 per step; spike when v > 2.5, then v <- -0.5.
    graph = nir.NIRGraph.from_list(nir.IF(r=np.array([2.0]), v_threshold=np.array([2.5]),
                                          v_reset=np.array([-0.5])))
    ys, _ = snnx.run(from_nir(graph, dt=0.5), jnp.ones((12, 1)))
    assert np.flatnonzero(A(ys)[:, 0]).tolist() == [2, 6, 10]


def _snntorch_synaptic(alpha, beta, thr, dt):
    tau_syn, tau_mem = dt / (1 - alpha), dt / (1 - beta)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt,
                       v_leak=np.zeros_like(beta), v_threshold=thr, w_in=tau_syn / dt)


def test_snntorch_synaptic_export_reproduces_its_recursion(getkey):
    dt = 1e-4  # what snnTorch's exporter writes
    alpha, beta = np.array([0.8, 0.5], np.float32), np.array([0.9, 0.7], np.float32)
    graph = nir.NIRGraph.from_list(_snntorch_synaptic(alpha, beta, np.ones(2, np.float32), dt))
    model = from_nir(graph, dt=dt, reset_mode="none")
    xs = np.asarray(jax.random.uniform(getkey(), (30, 2))) * 0.15
    ys, _, rec = snnx.run(model, xs, record=True)
    syn, mem, syns, mems, spks = np.zeros(2), np.zeros(2), [], [], []
    for x in xs:
        syn = alpha * syn + x
        mem = beta * mem + syn
        syns.append(syn)
        mems.append(mem)
        spks.append(mem > 1.0)
    np.testing.assert_allclose(A(rec[0].state.v), np.stack(mems), rtol=1e-4, atol=1e-5)
    # the synaptic current is snnTorch's `syn` (w_in = 1/(1 - alpha) undoes the Euler gain)
    np.testing.assert_allclose(A(rec[0].state.i), np.stack(syns), rtol=1e-4, atol=1e-6)
    assert np.stack(spks).any()
    np.testing.assert_array_equal(A(ys), np.stack(spks))


def test_snntorch_leaky_and_norse_lifbox_exports_reproduce_their_recursions(getkey):
    xs = np.asarray(jax.random.uniform(getkey(), (40, 3)), np.float32) * 0.4
    # snnTorch Leaky(beta), dt = 1e-4: tau = dt/(1-beta), r = tau/dt; below threshold
    # mem <- beta mem + x.
    dt, beta = 1e-4, np.array([0.9, 0.8, 0.95], np.float32)
    tau = dt / (1 - beta)
    leaky = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(3), v_threshold=np.full(3, 1e6))
    _, _, rec = snnx.run(from_nir(nir.NIRGraph.from_list(leaky), dt=dt), xs, record=True)
    mem, want = np.zeros(3), []
    for x in xs:
        mem = beta * mem + x
        want.append(mem)
    np.testing.assert_allclose(A(rec[0].state.v), np.stack(want), rtol=1e-4, atol=1e-6)
    # Norse LIFBoxCell, dt = 1e-3: tau = 1/tau_mem_inv, r = 1; v <- v + dt/tau (v_leak - v + x),
    # spike where v > v_th, then v <- v_reset.
    dt, tau_inv, v_leak, v_th, v_reset = 1e-3, 200.0, 0.1, 0.25, -0.05
    ones = np.ones(3, np.float32)
    lifbox = nir.LIF(tau=ones / tau_inv, r=ones, v_leak=v_leak * ones, v_threshold=v_th * ones,
                     v_reset=v_reset * ones)
    ys, _ = snnx.run(from_nir(nir.NIRGraph.from_list(lifbox), dt=dt), xs * 4)
    v, want = np.full(3, v_leak), []
    for x in xs * 4:
        v = v + dt * tau_inv * ((v_leak - v) + x)
        z = v > v_th
        v = np.where(z, v_reset, v)
        want.append(z)
    assert 0 < np.sum(want) < np.size(want)
    np.testing.assert_array_equal(A(ys), np.stack(want))


def test_snntorch_rsynaptic_subgraph_is_recurrent(getkey):
    dt, n = 1e-4, 3
    alpha, beta = np.full(n, 0.6, np.float32), np.full(n, 0.8, np.float32)
    w = np.asarray(jax.random.normal(getkey(), (n, n)), np.float32)
    sub = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])),
               "lif": _snntorch_synaptic(alpha, beta, np.ones(n, np.float32), dt),
               "w_rec": nir.Linear(weight=w), "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    w_in = np.asarray(jax.random.normal(getkey(), (n, 2)), np.float32)
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight=w_in),
               "rsyn": sub, "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "fc"), ("fc", "rsyn"), ("rsyn", "output")],
    )
    model = from_nir(graph, dt=dt, reset_mode="none")
    assert isinstance(model, snnx.Sequential) and isinstance(model[1], snnx.Recurrent)
    xs = np.asarray(jax.random.normal(getkey(), (25, 2)), np.float32)
    ys, _ = snnx.run(model, xs)
    syn, mem, spk, want = np.zeros(n), np.zeros(n), np.zeros(n), []
    for x in xs:  # snnTorch RSynaptic (reset_mechanism="none")
        syn = alpha * syn + w_in @ x + w @ spk
        mem = beta * mem + syn
        spk = (mem > 1.0).astype(np.float32)
        want.append(spk)
    assert 0 < np.sum(want) < np.size(want)
    np.testing.assert_array_equal(A(ys), np.stack(want))


def test_nir_dag_delay_and_integrator(getkey):
    dt = 1e-3
    wa = np.asarray(jax.random.normal(getkey(), (2, 2)), np.float32)
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([2])),
               "a": nir.Affine(weight=wa, bias=np.array([0.5, -0.5], np.float32)),
               "d": nir.Delay(delay=np.array([2e-3, 5e-3])),
               "s": nir.Scale(scale=np.array([3.0, -1.0], np.float32)),
               "i": nir.I(r=np.array([2.0, 4.0], np.float32)),
               "out": nir.Output(output_type=np.array([2]))},
        edges=[("in", "a"), ("a", "d"), ("in", "s"), ("d", "i"), ("s", "i"), ("i", "out")],
    )
    model = from_nir(graph, dt=dt)
    assert isinstance(model, Graph)
    xs = np.asarray(jax.random.normal(getkey(), (10, 2)), np.float32)
    ys, _ = snnx.run(model, xs)
    a = xs @ wa.T + np.array([0.5, -0.5])
    delayed = np.zeros_like(a)
    delayed[2:, 0], delayed[5:, 1] = a[:-2, 0], a[:-5, 1]
    want = np.cumsum(dt * np.array([2.0, 4.0]) * (delayed + xs * np.array([3.0, -1.0])), 0)
    np.testing.assert_allclose(A(ys), want, rtol=1e-5, atol=1e-7)


def _conv2d_reference(x, w, b, stride, pads, dilation, groups):
    """PyTorch's Conv2d definition, written out (x: (C, H, W), pads: ((lo, hi), (lo, hi)))."""
    x = np.pad(x, ((0, 0),) + tuple(pads))
    c_out, c_in_g, kh, kw = w.shape
    oh = (x.shape[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (x.shape[2] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((c_out, oh, ow))
    per_group = c_out // groups
    for o in range(c_out):
        g = o // per_group
        for i in range(oh):
            for j in range(ow):
                patch = x[g * c_in_g:(g + 1) * c_in_g,
                          i * stride[0]:i * stride[0] + dilation[0] * (kh - 1) + 1:dilation[0],
                          j * stride[1]:j * stride[1] + dilation[1] * (kw - 1) + 1:dilation[1]]
                out[o, i, j] = np.sum(patch * w[o]) + b[o]
    return out


@pytest.mark.parametrize("padding, pads", [
    ("same", ((0, 1), (1, 1))),  # kernel (2, 3), dilation 1: PyTorch puts the odd zero last
    ((1, 0), ((1, 1), (0, 0))),
])
def test_nir_conv2d_follows_pytorch_conventions(getkey, padding, pads):
    w = np.asarray(jax.random.normal(getkey(), (4, 1, 2, 3)), np.float32)
    b = np.asarray(jax.random.normal(getkey(), (4,)), np.float32)
    stride = (1, 1) if padding == "same" else (2, 1)
    dilation = (1, 1) if padding == "same" else (1, 2)
    conv = nir.Conv2d(input_shape=(5, 6), weight=w, stride=stride, padding=padding,
                      dilation=dilation, groups=2, bias=b)
    x = np.asarray(jax.random.normal(getkey(), (2, 5, 6)), np.float32)
    want = _conv2d_reference(x, w, b, stride, pads, dilation, groups=2)
    # Built by hand: nir's own shape inference miscounts grouped channels and non-square
    # kernels.
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2, 5, 6])), "conv": conv,
               "output": nir.Output(output_type=np.array(want.shape))},
        edges=[("input", "conv"), ("conv", "output")], type_check=False)
    model = from_nir(graph, dt=1.0)
    y, _ = model(jnp.asarray(x), model.init_state((2, 5, 6)))
    assert y.shape == want.shape
    np.testing.assert_allclose(A(y), want, rtol=1e-4, atol=1e-4)


def test_nir_pools_flatten_threshold(getkey):
    x = np.asarray(jax.random.normal(getkey(), (2, 4, 4)), np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    want_sum = np.stack([[[padded[c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum() for j in range(2)]
                          for i in range(2)] for c in range(2)])
    for node, want in [
        (nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]),
                       padding=np.array([1, 1])), want_sum),
        (nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]),
                       padding=np.array([1, 1])), want_sum / 9),  # zeros count (PyTorch)
        (nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=1, end_dim=2),
         x.reshape(2, 16)),
        (nir.Threshold(threshold=np.full((2, 4, 4), 0.2, np.float32)), (x > 0.2) * 1.0),
    ]:
        graph = nir.NIRGraph(
            nodes={"input": nir.Input(input_type=np.array([2, 4, 4])), "n": node,
                   "output": nir.Output(output_type=np.array(want.shape))},
            edges=[("input", "n"), ("n", "output")], type_check=False)
        model = from_nir(graph, dt=1.0)
        y, _ = model(jnp.asarray(x), model.init_state((2, 4, 4)))
        np.testing.assert_allclose(A(y), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The small layers NIR needs


def test_integrator_closed_form_jit_vmap_grad(getkey):
    # dv/dt = r I, v(0) = 0: v_k = dt r sum_{j<=k} x_j; d(sum_k v_k)/dx_j = dt r (T - j).
    neuron = Integrator(jnp.array([2.0, -1.0]), dt=0.25)
    xb = jax.random.normal(getkey(), (3, 7, 2))
    ys, _ = eqx.filter_jit(jax.vmap(lambda x: snnx.run(neuron, x)))(xb)
    np.testing.assert_allclose(A(ys), 0.25 * np.array([2.0, -1.0]) * np.cumsum(A(xb), 1),
                               rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda x: jnp.sum(snnx.run(neuron, x)[0]))(xb[0])
    np.testing.assert_allclose(A(g), 0.25 * np.array([2.0, -1.0]) * np.arange(7, 0, -1)[:, None],
                               rtol=1e-6)
    assert neuron.vector_field(0.0, neuron.init_state(2), jnp.ones(2)).v.tolist() == [2.0, -1.0]
    with pytest.raises(ValueError, match="Integrator parameter `r` must be finite"):
        Integrator(jnp.nan)


def test_threshold_scale_sumpool_flatten():
    th = Threshold(jnp.array([0.0, 1.0]))
    x = jnp.array([0.5, 0.5])
    assert th(x).tolist() == [1.0, 0.0]
    g = jax.grad(lambda v: jnp.sum(th(v)))(x)  # FastSigmoid: 1/(1 + 25 |v - th|)^2
    np.testing.assert_allclose(A(g), 1 / (1 + 25 * np.abs(A(x) - [0.0, 1.0])) ** 2, rtol=1e-5)
    assert Scale(jnp.array([1.0, -2.0]))(x).tolist() == [0.5, -1.0]
    y = SumPool2d(2, 1)(jnp.arange(9.0).reshape(1, 3, 3))
    assert y.tolist() == [[[8.0, 12.0], [20.0, 24.0]]]
    assert Flatten()(jnp.ones((2, 3, 4))).shape == (24,)
    assert Flatten(1, 2)(jnp.ones((2, 3, 4))).shape == (2, 12)
    assert Flatten(0, 1)(jnp.ones((2, 3, 4))).shape == (6, 4)
    with pytest.raises(ValueError, match="SumPool2d needs an input of shape"):
        SumPool2d(2)(jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="SumPool2d `kernel_size` must be an int >= 1"):
        SumPool2d(0)
    with pytest.raises(ValueError, match="Flatten `start_dim=2` comes after `end_dim=1`"):
        Flatten(2, 1)(jnp.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="Threshold `surrogate` must be"):
        Threshold(0.0, surrogate=lambda v: v)


# ---------------------------------------------------------------------------------------------
# Errors


@dataclasses.dataclass(eq=False)
class _Mystery(nir.NIRNode):
    """A node type no simulator knows."""

    def __post_init__(self):
        self.input_type = {"input": np.array([2])}
        self.output_type = {"output": np.array([2])}


def test_unsupported_nodes_raise_naming_them(getkey):
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])),
               "odd": _Mystery(),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "odd"), ("odd", "output")], type_check=False)
    with pytest.raises(ValueError, match="NIR node 'odd' of type _Mystery has no snnx"):
        from_nir(graph, dt=1.0)
    model = snnx.Sequential([eqx.nn.Linear(2, 3, key=getkey()), snnx.ALIF(2.0, 5.0)])
    with pytest.raises(ValueError, match=r"to_nir: layer '1' \(ALIF\) has no NIR equivalent"):
        to_nir(model, (2,))
    conv = eqx.nn.Conv2d(1, 1, 2, padding=((1, 0), (1, 0)), key=getkey())
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2d\) pads asymmetrically"):
        to_nir(snnx.Sequential([conv]), (1, 4, 4))


def test_bad_parameters_name_the_node():
    bad = nir.NIRGraph.from_list(nir.LIF(tau=np.zeros(2), r=np.ones(2), v_leak=np.zeros(2),
                                         v_threshold=np.ones(2)))
    with pytest.raises(ValueError, match=r"NIR node 'lif' of type LIF: LIF parameter `tau` must "
                                         r"be > 0"):
        from_nir(bad, dt=1.0)
    bad = nir.NIRGraph.from_list(nir.Delay(delay=np.array([1.0, -2.0])))
    with pytest.raises(ValueError, match=r"NIR node 'delay' of type Delay: Delay `delay` must "
                                         r"be >= 0"):
        from_nir(bad, dt=1.0)


def test_shape_mismatch_names_the_edge():
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])),
               "fc": nir.Affine(weight=np.ones((4, 3), np.float32), bias=np.zeros(4, np.float32)),
               "lif": nir.LIF(tau=np.ones(5), r=np.ones(5), v_leak=np.zeros(5),
                              v_threshold=np.ones(5)),
               "output": nir.Output(output_type=np.array([5]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(ValueError, match=r"shape mismatch on edge \('fc' -> 'lif'\): Affine node "
                                         r"'fc' outputs shape \(4,\), but LIF node 'lif' takes"):
        from_nir(graph, dt=1.0)
    # Undeclared shapes (pooling) are caught when the graph is run through its shapes.
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2, 4, 4])),
               "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                     padding=np.array([0, 0])),
               "fc": nir.Linear(weight=np.ones((3, 4), np.float32)),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "pool"), ("pool", "fc"), ("fc", "output")], type_check=False)
    with pytest.raises(ValueError, match=r"node 'fc' \(Linear\) cannot take an input of shape "
                                         r"\(2, 2, 2\) arriving on edge\(s\) \('pool' -> 'fc'\)"):
        from_nir(graph, dt=1.0)


def test_bad_arguments_raise(tmp_path):
    graph = _lif_graph(2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="from_nir `dt` must be a finite number > 0"):
        from_nir(graph, dt=-1.0)
    with pytest.raises(ValueError, match="from_nir `method` must be one of"):
        from_nir(graph, dt=1.0, method="rk4")
    with pytest.raises(FileNotFoundError, match="`graph_or_path` names no file"):
        from_nir(tmp_path / "missing.nir", dt=1.0)
    with pytest.raises(TypeError, match="`graph_or_path` must be a `nir.NIRGraph`"):
        from_nir(42, dt=1.0)
    two_in = nir.NIRGraph(
        nodes={"a": nir.Input(input_type=np.array([1])), "b": nir.Input(input_type=np.array([1])),
               "output": nir.Output(output_type=np.array([1]))},
        edges=[("a", "output"), ("b", "output")], type_check=False)
    with pytest.raises(ValueError, match=r"has inputs \['a', 'b'\] and outputs"):
        from_nir(two_in, dt=1.0)
    with pytest.raises(ValueError, match=r"layer '0' \(LIF\) was built with dt=1.0, but "
                                         r"`dt=0.5` was asked for"):
        to_nir(snnx.LIF(tau=2.0), (1,), dt=0.5)
    mixed = snnx.Sequential([snnx.LIF(tau=2.0), snnx.LIF(tau=2.0, dt=0.5)])
    with pytest.raises(ValueError, match="use different time steps"):
        to_nir(mixed, (1,))


# ---------------------------------------------------------------------------------------------
# Per-synapse delays: an expanded graph of Delay -> Linear per delay value


def test_roundtrip_per_synapse_delays_as_expanded_graph(getkey, tmp_path):
    D = np.array(jax.random.randint(getkey(), (3, 4), 0, 4))
    D[0, 0] = 0
    layer = snnx.layers.DelayedLinear(4, 3, 6, delay=D, key=getkey(), dt=0.5)
    model = snnx.Sequential([layer, snnx.LIF(tau=1.0, r=2.0, dt=0.5)])
    graph = to_nir(model, (4,))
    sub = graph.nodes["0"]
    assert isinstance(sub, nir.NIRGraph)
    values = np.unique(D)
    # One uniform nir.Delay (d * dt on every input) and one masked nir.Linear per value.
    for d in values:
        np.testing.assert_allclose(A(sub.nodes[f"delay_{d}"].delay), np.full(4, d * 0.5))
        np.testing.assert_array_equal(A(sub.nodes[f"weight_{d}"].weight),
                                      np.where(D == d, A(layer.weight), 0))
    np.testing.assert_allclose(
        sum(A(sub.nodes[f"weight_{d}"].weight) for d in values), A(layer.weight))
    back, _ = _roundtrip(model, (4,), tmp_path, dt=0.5)
    rebuilt = back.layers[0]
    assert isinstance(rebuilt, snnx.layers.DelayedLinear) and rebuilt.max_delay == 6
    np.testing.assert_array_equal(A(rebuilt.delay), D)
    np.testing.assert_array_equal(A(rebuilt.weight), A(layer.weight))
    xs = jax.random.bernoulli(getkey(), 0.5, (12, 4)).astype(jnp.float32) * 2
    _same(model, back, xs)


def test_learnable_delays_export_after_rounding(getkey):
    dcls = snnx.layers.DCLSLinear(3, 2, 4, sigma=1.0, key=getkey())
    with pytest.raises(ValueError, match=r"real-valued delays.*round_delays"):
        to_nir(snnx.Sequential([dcls, snnx.LIF(tau=2.0)]), (3,))
    graph = to_nir(snnx.layers.round_delays(snnx.Sequential([dcls, snnx.LIF(tau=2.0)])), (3,))
    assert any(isinstance(n, nir.Delay) for n in graph.nodes["0"].nodes.values())
