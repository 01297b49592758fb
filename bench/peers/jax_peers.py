"""Spyx 1.0 (Flax NNX) and jaxpike 0.1.4 (Equinox) versions of workload (a).

Each is written the way that library's own docs and source show: Spyx steps the whole
`spyx.nn.Sequential` inside `spyx.nn.run`'s scan (time-major); jaxpike runs its
`Sequential` through `jaxpike.unroll` (which hoists `Dense` layers itself) and trains with
`jaxpike.make_step`. Same sizes, LIF decay exp(-1/10), fast-sigmoid-style surrogates,
max-over-time cross-entropy and Adam(1e-3).
"""

import math

import jax
import jax.numpy as jnp
import optax
from common import jax_peak_bytes

TAU = 10.0


def _ce(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def build_spyx_a(cfg, kind, data):
    import spyx
    from flax import nnx

    beta = math.exp(-1.0 / TAU)
    rngs = nnx.Rngs(0)
    h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
    model = spyx.nn.Sequential(
        nnx.Linear(n_in, h, rngs=rngs), spyx.nn.LIF((h,), beta=beta, rngs=rngs),
        nnx.Linear(h, h, rngs=rngs), spyx.nn.LIF((h,), beta=beta, rngs=rngs),
        nnx.Linear(h, n_out, rngs=rngs), spyx.nn.LI((n_out,), beta=beta, rngs=rngs),
    )
    graphdef, params = nnx.split(model)
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 2))
    y = jnp.asarray(y)

    def logits(params, xs):
        m = nnx.merge(graphdef, params)
        out, _ = spyx.nn.run(m, xs)
        return out.max(axis=0)

    return _jax_step(logits, params, xs, y, kind)


def build_jaxpike_a(cfg, kind, data):
    import equinox as eqx
    import jaxpike as jp

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
    net = jp.Sequential(
        jp.Dense(n_in, h, key=k1), jp.LIF(TAU),
        jp.Dense(h, h, key=k2), jp.LIF(TAU),
        jp.Dense(h, n_out, key=k3), jp.LeakyIntegrator(TAU),
    )
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 2))
    y = jnp.asarray(y)
    if kind == "forward":
        f = eqx.filter_jit(lambda net, xs: jp.max_membrane_logits(jp.unroll(net, xs)[0]))
        mem = jax_peak_bytes(f, net, xs)
        return (lambda: f(net, xs)), mem

    def loss_fn(net, xs, y):
        return jp.cross_entropy(jp.max_membrane_logits(jp.unroll(net, xs)[0]), y), None

    opt = optax.adam(1e-3)
    step = jp.make_step(loss_fn, opt)
    holder = [net, opt.init(eqx.filter(net, eqx.is_inexact_array))]
    mem = jax_peak_bytes(step, holder[0], holder[1], xs, y)

    def call():
        n, o, loss, _ = step(holder[0], holder[1], xs, y)
        holder[0], holder[1] = n, o
        return loss

    return call, mem


def _jax_step(logits, params, xs, y, kind):
    from jaxstep import forward_step, train_step

    if kind == "forward":
        return forward_step(logits, params, (xs,))
    return train_step(lambda p, xs, y: _ce(logits(p, xs), y), params, (xs, y))
