import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers.sparse import SparseLinear


def _spikes(key, shape, density=0.1):
    return jax.random.bernoulli(key, density, shape).astype(jnp.float32)


def test_forward_equals_linear(getkey):
    lin = eqx.nn.Linear(70, 9, key=getkey())
    sp = SparseLinear.from_linear(lin)
    x = _spikes(getkey(), (13, 70))
    x = x.at[0].set(1.0).at[1].set(0.0)  # every input active, and none
    want = jax.vmap(lin)(x)
    np.testing.assert_allclose(sp(x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(sp))(x), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sp(x[2]), lin(x[2]), rtol=1e-6, atol=1e-6)


def test_gradients_equal_linear(getkey):
    lin = eqx.nn.Linear(40, 6, key=getkey())
    sp = SparseLinear.from_linear(lin)
    x = _spikes(getkey(), (5, 40), 0.2)
    c = jax.random.normal(getkey(), (5, 6))

    def loss(layer, x):
        return jnp.sum(jnp.tanh(jax.vmap(layer)(x)) * c)

    g_lin, gx_lin = jax.grad(loss, argnums=(0, 1))(lin, x)
    g_sp, gx_sp = jax.jit(jax.grad(loss, argnums=(0, 1)))(sp, x)
    np.testing.assert_allclose(g_sp.weight, g_lin.weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_sp.bias, g_lin.bias, rtol=1e-5, atol=1e-6)
    # the dense input gradient, also where no spike was (surrogate-gradient training needs it)
    np.testing.assert_allclose(gx_sp, gx_lin, rtol=1e-5, atol=1e-6)


def test_in_snnx_run_matches_dense_model(getkey):
    lin = eqx.nn.Linear(30, 8, key=getkey())
    # r=10 lifts the hidden layer over threshold: a silent one would compare only surrogates
    dense = snnx.Sequential([lin, snnx.LIF(5.0, r=10.0), eqx.nn.Linear(8, 3, key=getkey()),
                             snnx.LI(5.0)])
    sparse = eqx.tree_at(lambda m: m.layers[0], dense, SparseLinear.from_linear(lin))
    xb = _spikes(getkey(), (2, 12, 30), 0.2)
    rec = jax.vmap(lambda x: snnx.run(sparse, x, record=True)[2])(xb)
    assert 0.05 < float(rec[1].output.mean()) < 0.5  # the hidden layer spikes

    def loss(model):
        out, _ = jax.vmap(lambda x: snnx.run(model, x))(xb)
        return jnp.sum(out.max(axis=1) ** 2)

    l_d, g_d = eqx.filter_value_and_grad(loss)(dense)
    l_s, g_s = eqx.filter_jit(eqx.filter_value_and_grad(loss))(sparse)
    np.testing.assert_allclose(l_s, l_d, rtol=1e-5)
    np.testing.assert_allclose(g_s.layers[0].weight, g_d.layers[0].weight, rtol=1e-4, atol=1e-6)
    out_step, _ = snnx.run(sparse, xb[0], mode="step")
    out_layer, _ = snnx.run(sparse, xb[0], mode="layer")
    np.testing.assert_allclose(out_step, out_layer, rtol=1e-5, atol=1e-6)


def test_no_bias_and_constructor(getkey):
    sp = SparseLinear(10, 4, use_bias=False, key=getkey())
    assert sp.bias is None
    x = _spikes(getkey(), (10,), 0.5)
    np.testing.assert_allclose(sp(x), sp.weight @ x, rtol=1e-6, atol=1e-6)


def test_bad_inputs(getkey):
    sp = SparseLinear(10, 4, key=getkey())
    with pytest.raises(ValueError, match="in_features=10"):
        sp(jnp.zeros((3, 11)))
    with pytest.raises(ValueError, match="`out_features` must be a positive int"):
        SparseLinear(10, 0, key=getkey())
    with pytest.raises(TypeError, match="`linear` must be an `eqx.nn.Linear`"):
        SparseLinear.from_linear(sp)
    with pytest.raises(ValueError, match="not 'scalar'"):
        SparseLinear.from_linear(eqx.nn.Linear("scalar", 3, key=getkey()))


def test_exports_to_nir_as_affine(getkey):
    nir = pytest.importorskip("nir")
    lin = eqx.nn.Linear(12, 5, key=getkey())
    model = snnx.Sequential([SparseLinear.from_linear(lin), snnx.LIF(5.0, r=10.0)])
    graph = snnx.to_nir(model, input_shape=(12,))
    affine = [n for n in graph.nodes.values() if isinstance(n, nir.Affine)]
    assert len(affine) == 1
    np.testing.assert_array_equal(affine[0].weight, np.asarray(lin.weight))
    back = snnx.from_nir(graph, dt=1.0)
    x = _spikes(getkey(), (6, 12), 0.3)
    out = snnx.run(model, x)[0]
    assert 0.05 < float(out.mean()) < 0.5  # the round trip is compared on spikes
    np.testing.assert_allclose(snnx.run(back, x)[0], out, atol=1e-6)
