"""snnx.Graph: DAGs, sums at nodes, feedback edges with a one-step delay, nesting, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers.basic import Scale
from snnx.layers.graph import Graph


def _xs(key, T=10, n=3, scale=3.0):
    return jax.random.normal(key, (T, n)) * scale


def test_chain_graph_equals_sequential(getkey):
    layers = [eqx.nn.Linear(3, 4, key=getkey()), snnx.LIF(tau=4.0, r=4.0),
              eqx.nn.Linear(4, 2, key=getkey()), snnx.LI(tau=5.0)]
    graph = Graph({f"n{i}": layer for i, layer in enumerate(layers)},
                  [("input", "n0"), ("n0", "n1"), ("n1", "n2"), ("n2", "n3"), ("n3", "output")])
    xs = _xs(getkey())
    a, _ = snnx.run(graph, xs)
    b, _, rec = snnx.run(snnx.Sequential(layers), xs, record=True)
    assert 0.05 < float(rec[1].output.mean()) < 0.5  # the LIF spikes
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    assert graph.output_shape((3,)) == (2,)
    assert graph.feedback_edges == ()


def test_dag_with_skip_connection_sums_inputs(getkey):
    fa, fb = eqx.nn.Linear(3, 4, key=getkey()), eqx.nn.Linear(3, 4, key=getkey())
    lif = snnx.LIF(tau=3.0)
    graph = Graph({"a": fa, "b": fb, "lif": lif, "scale": Scale(2.0)},
                  [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"),
                   ("lif", "output"), ("b", "scale"), ("scale", "output")])
    xs = _xs(getkey())
    ys, _ = snnx.run(graph, xs)
    # Hand-written reference: lif(fa x + fb x) + 2 fb x.
    s, want = lif.init_state((4,)), []
    for x in xs:
        spk, s = lif(fa(x) + fb(x), s)
        want.append(spk + 2.0 * fb(x))
    np.testing.assert_allclose(np.asarray(ys), np.asarray(jnp.stack(want)), rtol=1e-6)


def test_feedback_edge_is_one_step_delay_like_recurrent(getkey):
    n = 4
    rec = snnx.Recurrent(snnx.LIF(tau=4.0), n, key=getkey(), init_scale=3.0)
    w = eqx.nn.Linear(n, n, use_bias=False, key=getkey())
    w = eqx.tree_at(lambda m: m.weight, w, rec.weight)
    graph = Graph({"lif": rec.neuron, "w_rec": w},
                  [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    assert graph.feedback_edges == (("w_rec", "lif"),)
    xs = _xs(getkey(), T=20, n=n)
    a, _ = snnx.run(graph, xs)
    b, _ = snnx.run(rec, xs)
    assert float(a.sum()) > 3
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nested_graph_jit_vmap_grad(getkey):
    inner = Graph({"fc": eqx.nn.Linear(3, 3, key=getkey()), "li": snnx.LI(tau=2.0)},
                  [("input", "fc"), ("fc", "li"), ("li", "output"), ("input", "output")])
    outer = Graph({"sub": inner, "lif": snnx.LIF(tau=3.0)},
                  [("input", "sub"), ("sub", "lif"), ("lif", "output")])
    xb = jax.random.normal(getkey(), (2, 6, 3)) * 3
    ys, _ = eqx.filter_jit(jax.vmap(lambda x: snnx.run(outer, x)))(xb)
    assert ys.shape == (2, 6, 3)
    # Reference via Sequential: inner = li(fc x) + x.
    fc, li, lif = inner.nodes["fc"], inner.nodes["li"], outer.nodes["lif"]
    s1, s2, want = li.init_state((3,)), lif.init_state((3,)), []
    for x in xb[1]:
        v, s1 = li(fc(x), s1)
        spk, s2 = lif(v + x, s2)
        want.append(spk)
    np.testing.assert_array_equal(np.asarray(ys[1]), np.asarray(jnp.stack(want)))
    g = eqx.filter_grad(lambda m: jnp.sum(snnx.run(m, xb[0])[0]))(outer)
    assert float(jnp.abs(g.nodes["sub"].nodes["fc"].weight).sum()) > 0


def test_graph_errors_name_node_and_edge(getkey):
    lin = eqx.nn.Linear(3, 4, key=getkey())
    with pytest.raises(ValueError, match="names the unknown node 'nope'"):
        Graph({"a": lin}, [("input", "a"), ("a", "nope")])
    with pytest.raises(ValueError, match="is given twice"):
        Graph({"a": lin}, [("input", "a"), ("a", "output"), ("a", "output")])
    with pytest.raises(ValueError, match=r"\['b'\] are not reachable"):
        Graph({"a": lin, "b": lin}, [("input", "a"), ("a", "output"), ("b", "output")])
    with pytest.raises(ValueError, match="leads into the input"):
        Graph({"a": lin}, [("input", "a"), ("a", "input"), ("a", "output")])
    g = Graph({"a": lin, "b": eqx.nn.Linear(3, 5, key=getkey())},
              [("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")])
    with pytest.raises(ValueError, match=r"'output' sums inputs of different shapes: \('a' -> "):
        g.init_state((3,))
    g = Graph({"a": lin, "b": eqx.nn.Linear(3, 2, key=getkey())},
              [("input", "a"), ("a", "b"), ("b", "output")])
    with pytest.raises(ValueError, match=r"node 'b' \(Linear\) cannot take an input of shape "
                                         r"\(4,\) arriving on edge\(s\) \('a' -> 'b'\)"):
        g.init_state((3,))
    g = Graph({"lif": snnx.LIF(tau=2.0), "w": eqx.nn.Linear(4, 2, key=getkey())},
              [("input", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match=r"feedback edge \('w' -> 'lif'\) carries shape \(2,\)"):
        g.init_state((4,))
    with pytest.raises(ValueError, match="name of the graph's input"):
        Graph({"input": lin}, [("input", "output")])


def test_layer_major_equals_step_major_for_dags(getkey):
    inner = Graph({"fc": eqx.nn.Linear(4, 4, key=getkey()), "li": snnx.LI(tau=2.0)},
                  [("input", "fc"), ("fc", "li"), ("li", "output"), ("input", "output")])
    graph = Graph(
        {"a": eqx.nn.Linear(3, 4, key=getkey()), "drop": eqx.nn.Dropout(0.3),
         "b": eqx.nn.Linear(3, 4, key=getkey()), "lif": snnx.LIF(tau=3.0, r=3.0),
         "sub": inner, "seq": snnx.Sequential([snnx.LIF(tau=2.0, r=3.0)])},
        [("input", "a"), ("a", "drop"), ("drop", "lif"), ("input", "b"), ("b", "lif"),
         ("lif", "sub"), ("sub", "seq"), ("seq", "output"), ("b", "output")],
    )
    xs, key = _xs(getkey(), T=12), getkey()
    step, s_step = snnx.run(graph, xs, key=key, mode="step")
    layer, s_layer = snnx.run(graph, xs, key=key, mode="layer")
    np.testing.assert_allclose(np.asarray(layer), np.asarray(step), rtol=1e-6, atol=1e-6)
    assert eqx.tree_equal(s_layer, s_step, rtol=1e-6, atol=1e-6)
    assert float(jnp.sum(step != 0)) > 10
    # the output is the last LIF's spikes plus the skip edge from "b": the spikes are there
    spikes = step - jax.vmap(graph.nodes["b"])(xs)
    assert 0.05 < float(spikes.mean()) < 0.6
    det = eqx.nn.inference_mode(graph)
    no_key, _ = snnx.run(det, xs, mode="layer")
    np.testing.assert_allclose(np.asarray(no_key), np.asarray(snnx.run(det, xs)[0]), rtol=1e-6)
    cyclic = Graph({"lif": snnx.LIF(tau=2.0), "w": eqx.nn.Linear(4, 4, key=getkey())},
                   [("input", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match=r"feedback edges \('w' -> 'lif'\) must run step-major"):
        snnx.run(cyclic, _xs(getkey(), n=4), mode="layer")
