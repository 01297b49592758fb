"""(a) SHD-shaped feed-forward classifier: 700 -> 128 LIF -> 128 LIF -> 20 LI.

T=100, batch 64, ~3% input spike density; loss: cross-entropy on the readout's maximum over
time; Adam. snnx runs batch-major `(B, T, 700)` through `jax.vmap(snnx.run)` (its API); the
hand-written reference gets the same spikes time-major.
"""

import equinox as eqx
import handwritten as hw
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rates
from jaxstep import forward_step, train_step

NAME = "a_shd_ff"
TITLE = "(a) SHD-shaped FF 700-128-128-20, T=100, B=64, 3% density"
TAU = 10.0


def config(quick=False, T=100):
    return dict(T=T, B=64, n_in=700, hidden=128, n_out=20, density=0.03)


def make_data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((cfg["B"], cfg["T"], cfg["n_in"])) < cfg["density"]).astype(np.float32)
    y = rng.integers(0, cfg["n_out"], cfg["B"]).astype(np.int32)
    return x, y


def snnx_model(cfg, seed=0, sparse=False):
    import snnx

    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    model = snnx.Sequential([
        eqx.nn.Linear(cfg["n_in"], cfg["hidden"], key=k1), snnx.LIF(TAU),
        eqx.nn.Linear(cfg["hidden"], cfg["hidden"], key=k2), snnx.LIF(TAU),
        eqx.nn.Linear(cfg["hidden"], cfg["n_out"], key=k3), snnx.LI(TAU),
    ])
    # equinox's init times the calibrated scales (cfg["scales"], set by run.py), so that the
    # hidden layers spike; the hand-written reference copies these weights
    model = rates.scaled(model, "a", cfg.get("scales", {}).get("snnx"))
    if sparse:
        from snnx.layers.sparse import SparseLinear

        model = eqx.tree_at(lambda m: m.layers[0], model,
                            SparseLinear.from_linear(model.layers[0]))
    return model


def _xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def snnx_parts(cfg, *, remat=False, unroll=None, sparse=False):
    """`(params, logits(params, x))`; `x` is `(B, T, 700)` spikes or `snnx.SpikeEvents`."""
    import snnx

    model = snnx_model(cfg, sparse=sparse)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def logits(params, x):
        m = eqx.combine(params, static)
        out, _ = jax.vmap(lambda xi: snnx.run(m, xi, remat=remat, unroll=unroll))(x)
        return out.max(axis=1)

    return params, logits


def build_snnx(cfg, kind, data, *, events=False, **kw):
    """snnx on workload (a). `events=True` feeds `snnx.SpikeEvents` (built once, outside
    the timed step, like any dataset staged on the device) so that the first Linear runs
    event-driven."""
    import snnx

    x, y = (jnp.asarray(a) for a in data)
    if events:
        x = snnx.SpikeEvents.from_dense(data[0])
    params, logits = snnx_parts(cfg, **kw)
    if kind == "forward":
        return forward_step(logits, params, (x,))
    return train_step(lambda p, x, y: _xent(logits(p, x), y), params, (x, y))


def hw_params(cfg):
    m = snnx_model(cfg)
    return tuple(hw.linear_params(m.layers[i]) for i in (0, 2, 4))


def build_handwritten(cfg, kind, data, unroll=1):
    x, y = data
    xs = jnp.asarray(np.ascontiguousarray(x.transpose(1, 0, 2)))
    y = jnp.asarray(y)
    params = hw_params(cfg)
    f = lambda p, xs: hw.ff_logits(p, xs, TAU, unroll=unroll)  # noqa: E731
    if kind == "forward":
        return forward_step(f, params, (xs,))
    return train_step(lambda p, xs, y: _xent(f(p, xs), y), params, (xs, y))


def check_equal(cfg, data):
    """Max |snnx - hand-written| of the logits and of the loss gradients, on the same weights
    and inputs (the spiking network of `cfg["scales"]`)."""
    x, y = data
    y = jnp.asarray(y)
    xs = jnp.asarray(x.transpose(1, 0, 2))
    params, logits = snnx_parts(cfg)
    hand = lambda p, xs: hw.ff_logits(p, xs, TAU)  # noqa: E731
    ga = jax.jit(jax.grad(lambda p, x: _xent(logits(p, x), y)))(params, jnp.asarray(x))
    gb = jax.jit(jax.grad(lambda p, xs: _xent(hand(p, xs), y)))(hw_params(cfg), xs)
    a, b = jax.jit(logits)(params, jnp.asarray(x)), jax.jit(hand)(hw_params(cfg), xs)
    return float(jnp.max(jnp.abs(a - b))), rates.max_leaf_diff(ga, gb)


def build_snnx_time_major(cfg, kind, data):
    """snnx with time-major data, batched by `jax.vmap(..., in_axes=1, out_axes=1)`.

    Same model and numbers; the batch axis then already sits where `lax.scan` under `vmap`
    puts it, so no layout copy of the first layer's current is needed.
    """
    import snnx

    model = snnx_model(cfg)
    params, static = eqx.partition(model, snnx.trainable_spec(model))

    def logits(p, xs):
        m = eqx.combine(p, static)
        out, _ = jax.vmap(lambda xi: snnx.run(m, xi), in_axes=1, out_axes=1)(xs)
        return out.max(axis=0)

    x, y = data
    xs = jnp.asarray(np.ascontiguousarray(x.transpose(1, 0, 2)))
    if kind == "forward":
        return forward_step(logits, params, (xs,))
    return train_step(lambda p, xs, y: _xent(logits(p, xs), y), params, (xs, jnp.asarray(y)))


def check_events(cfg, data):
    """Max |difference| of logits and of weight gradients, events vs dense input."""
    import snnx

    x, y = data
    params, logits = snnx_parts(cfg)
    ev = snnx.SpikeEvents.from_dense(x)
    loss = jax.jit(jax.value_and_grad(lambda p, x: _xent(logits(p, x), jnp.asarray(y))))
    (_, ga), (_, gb) = loss(params, jnp.asarray(x)), loss(params, ev)
    dg = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(ga),
                                                             jax.tree.leaves(gb)))
    out = jax.jit(logits)
    return float(jnp.max(jnp.abs(out(params, jnp.asarray(x)) - out(params, ev)))), dg
