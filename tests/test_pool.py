import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.layers.pool import tiled_pool

_CASES = [
    (eqx.nn.MaxPool2d(2, 2), (3, 4, 11, 11)),  # odd sizes: the remainder is cropped
    (eqx.nn.MaxPool2d(3, 3), (2, 3, 10, 9)),
    (eqx.nn.MaxPool1d(2, 2), (5, 3, 7)),
    (eqx.nn.MaxPool3d(2, 2), (2, 2, 5, 4, 6)),
    (eqx.nn.AvgPool2d(2, 2), (3, 4, 11, 11)),
    (eqx.nn.AvgPool1d(3, 3), (4, 2, 10)),
]


@pytest.mark.parametrize("layer,shape", _CASES,
                         ids=[f"{type(lyr).__name__}-{lyr.kernel_size[0]}" for lyr, _ in _CASES])
def test_tiled_pool_equals_equinox_with_ties(layer, shape):
    # integer-valued inputs: most windows hold ties, where the gradient must go to the first
    # maximal entry as in XLA's select_and_scatter (the reference is equinox's own layer)
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.round(rng.normal(size=shape)).astype(np.float32))
    pool, ref = tiled_pool(layer), jax.vmap(layer)
    is_max = type(layer).__name__.startswith("Max")
    if is_max:
        np.testing.assert_array_equal(pool(x), ref(x))
    else:  # a mean: the summation order may differ by backend (1 ulp on GPU)
        np.testing.assert_allclose(pool(x), ref(x), rtol=1e-6)
    c = jnp.asarray(rng.normal(size=ref(x).shape).astype(np.float32))
    g = jax.jit(jax.grad(lambda x: jnp.sum(pool(x) * c)))(x)
    g_ref = jax.grad(lambda x: jnp.sum(ref(x) * c))(x)
    if is_max:
        np.testing.assert_array_equal(g, g_ref)
    else:  # the mean's 1/size is applied in another order: equal to float rounding
        np.testing.assert_allclose(g, g_ref, rtol=1e-6)
    v = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    np.testing.assert_allclose(jax.jvp(pool, (x,), (v,))[1], jax.jvp(ref, (x,), (v,))[1],
                               rtol=0 if is_max else 1e-6)


def test_tiled_pool_declines_overlapping_or_padded_windows():
    assert tiled_pool(eqx.nn.MaxPool2d(3, 2)) is None
    assert tiled_pool(eqx.nn.MaxPool2d(2, 2, padding=1)) is None
    assert tiled_pool(eqx.nn.MaxPool2d(2, 2, use_ceil=True)) is None
    assert tiled_pool(eqx.nn.Linear(2, 2, key=jax.random.key(0))) is None
    with pytest.raises(ValueError, match="MaxPool2d needs inputs of shape"):
        tiled_pool(eqx.nn.MaxPool2d(2, 2))(jnp.zeros((4, 4)))


def test_conv_net_layer_major_equals_step_major(getkey):
    # layer-major applies the pools through `tiled_pool`, step-major calls equinox's layers;
    # r=4 makes the LIF spike, so the max pool's gradient routing is seen through spikes
    model = snnx.Sequential([
        eqx.nn.Conv2d(2, 4, 3, key=getkey()), eqx.nn.MaxPool2d(2, 2), snnx.LIF(5.0, r=4.0),
        eqx.nn.AvgPool2d(2, 2), jnp.ravel, eqx.nn.Linear(4 * 3 * 3, 3, key=getkey()),
        snnx.LI(5.0),
    ])
    xs = jnp.asarray((np.random.default_rng(1).random((12, 2, 14, 14)) < 0.3)
                     .astype(np.float32))
    rec = snnx.run(model, xs, record=True)[2]
    assert 0.05 < float(rec[2].output.mean()) < 0.5  # the LIF layer spikes

    def loss(m, mode):
        return jnp.sum(snnx.run(m, xs, mode=mode)[0] ** 2)

    l_layer, g_layer = eqx.filter_value_and_grad(loss)(model, "layer")
    l_step, g_step = eqx.filter_value_and_grad(loss)(model, "step")
    np.testing.assert_allclose(l_layer, l_step, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_layer), jax.tree.leaves(g_step)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_run_rejects_a_pool_input_without_channels():
    # layer-major must not pool (T, H, W) as if T were channels: equinox's error, as step-major
    model = snnx.Sequential([eqx.nn.MaxPool2d(2, 2), snnx.LIF(5.0)])
    for mode in ("layer", "step"):
        with pytest.raises(ValueError, match="cannot take an input of shape"):
            snnx.run(model, jnp.ones((4, 6, 6)), mode=mode)
