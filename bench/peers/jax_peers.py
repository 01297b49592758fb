"""Spyx 1.0 (Flax NNX) and jaxpike 0.1.4 (Equinox) versions of workloads (a)-(d).

Each is written the way that library's own docs and source show: Spyx steps the whole
`spyx.nn.Sequential` inside `spyx.nn.run`'s scan (time-major); jaxpike runs its
`Sequential` through `jaxpike.unroll` (which hoists `Dense` layers itself) and trains with
`jaxpike.make_step`. Same sizes, LIF decay exp(-1/10), fast-sigmoid-style surrogates,
max-over-time cross-entropy and Adam(1e-3).

(b) recurrent: Spyx `spyx.nn.RLIF` (its all-to-all recurrent LIF cell, spikes of t-1 fed
back through `recurrent_w`); jaxpike a `jp.Graph` with a `Dense` back-edge, exactly as in its
`graph.py` docstring (the back-edge reads the previous step). (c) conv: jaxpike has its own
`Conv2d` / `Pool2d(mode="max")` / `Flatten` (NHWC); Spyx has no conv layers, so `nnx.Conv`
and `nnx.max_pool` (Flax, NHWC) sit inside its `Sequential` with `spyx.nn.LIF` and
`spyx.nn.Flatten`. Loss: cross-entropy on output spike counts. (d) `Linear(N, N)` + LIF,
loss the mean output spike rate. Each library's own neuron maths is kept (Spyx: no (1-beta)
input gain, spike from the membrane before the update; jaxpike: normalised (1-alpha) gain).
"""

import math

import jax
import jax.numpy as jnp
import optax
from common import jax_peak_bytes

TAU = 10.0


def _eqx_peak_bytes(fn, *args):
    """`jax_peak_bytes` for an `eqx.filter_jit` function (whose compiled object has no
    `memory_analysis`): the same computation under `jax.jit`, arrays as the arguments."""
    import equinox as eqx

    dyn, static = eqx.partition(args, eqx.is_array)
    return jax_peak_bytes(jax.jit(lambda d: fn(*eqx.combine(d, static))), dyn)


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
        mem = _eqx_peak_bytes(f, net, xs)
        return (lambda: f(net, xs)), mem

    def loss_fn(net, xs, y):
        return jp.cross_entropy(jp.max_membrane_logits(jp.unroll(net, xs)[0]), y), None

    opt = optax.adam(1e-3)
    step = jp.make_step(loss_fn, opt)
    holder = [net, opt.init(eqx.filter(net, eqx.is_inexact_array))]
    mem = _eqx_peak_bytes(step, holder[0], holder[1], xs, y)

    def call():
        n, o, loss, _ = step(holder[0], holder[1], xs, y)
        holder[0], holder[1] = n, o
        return loss

    return call, mem


def _spyx_model(kind_of_net, cfg):
    import spyx
    from flax import nnx

    beta = math.exp(-1.0 / TAU)
    rngs = nnx.Rngs(0)
    if kind_of_net == "b":
        h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
        return spyx.nn.Sequential(
            nnx.Linear(n_in, h, rngs=rngs), spyx.nn.RLIF((h,), beta=beta, rngs=rngs),
            nnx.Linear(h, n_out, rngs=rngs), spyx.nn.LI((n_out,), beta=beta, rngs=rngs),
        )
    if kind_of_net == "c":
        return spyx.nn.Sequential(
            nnx.Conv(2, 12, (5, 5), padding="VALID", rngs=rngs), _MaxPool2(),
            spyx.nn.LIF((15, 15, 12), beta=beta, rngs=rngs),
            nnx.Conv(12, 32, (5, 5), padding="VALID", rngs=rngs), _MaxPool2(),
            spyx.nn.LIF((5, 5, 32), beta=beta, rngs=rngs),
            spyx.nn.Flatten(), nnx.Linear(800, cfg["n_out"], rngs=rngs),
            spyx.nn.LIF((cfg["n_out"],), beta=beta, rngs=rngs),
        )
    n = cfg["n"]
    return spyx.nn.Sequential(nnx.Linear(n, n, rngs=rngs),
                              spyx.nn.LIF((n,), beta=beta, rngs=rngs))


def _max_pool2(x):
    from flax import nnx

    return nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class _MaxPool2:
    """Stateless 2x2 max pool (NHWC) for a Spyx Sequential: Flax's `nnx.max_pool`."""

    def __call__(self, x):
        return _max_pool2(x)


def _spyx_build(net, cfg, kind, xs, y, readout, loss):
    from flax import nnx

    model = _spyx_model(net, cfg)
    graphdef, params = nnx.split(model)

    def out(params, xs):
        import spyx

        m = nnx.merge(graphdef, params)
        o, _ = spyx.nn.run(m, xs)
        return readout(o)

    from jaxstep import forward_step, train_step

    if kind == "forward":
        return forward_step(out, params, (xs,))
    if y is None:
        return train_step(lambda p, xs: loss(out(p, xs)), params, (xs,))
    return train_step(lambda p, xs, y: loss(out(p, xs), y), params, (xs, y))


def build_spyx_b(cfg, kind, data):
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 2))
    return _spyx_build("b", cfg, kind, xs, jnp.asarray(y), lambda o: o.max(axis=0), _ce)


def build_spyx_c(cfg, kind, data):
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 3, 4, 2))  # (T, B, H, W, C): Flax convs are NHWC
    return _spyx_build("c", cfg, kind, xs, jnp.asarray(y), lambda o: o.sum(axis=0), _ce)


def build_spyx_d(cfg, kind, data):
    xs = jnp.asarray(data[0].transpose(1, 0, 2))
    return _spyx_build("d", cfg, kind, xs, None, lambda o: o, lambda o: o.mean())


def _jaxpike_build(net, kind, xs, y, readout, loss):
    import equinox as eqx
    import jaxpike as jp

    if kind == "forward":
        f = eqx.filter_jit(lambda net, xs: readout(jp.unroll(net, xs)[0]))
        mem = _eqx_peak_bytes(f, net, xs)
        return (lambda: f(net, xs)), mem

    def loss_fn(net, xs, y):
        return loss(readout(jp.unroll(net, xs)[0]), y), None

    opt = optax.adam(1e-3)
    step = jp.make_step(loss_fn, opt)
    holder = [net, opt.init(eqx.filter(net, eqx.is_inexact_array))]
    mem = _eqx_peak_bytes(step, holder[0], holder[1], xs, y)

    def call():
        n, o, loss_, _ = step(holder[0], holder[1], xs, y)
        holder[0], holder[1] = n, o
        return loss_

    return call, mem


def build_jaxpike_b(cfg, kind, data):
    import jaxpike as jp

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    h, n_in, n_out = cfg["hidden"], cfg["n_in"], cfg["n_out"]
    net = jp.Graph(
        nodes={
            "w_in": jp.Dense(n_in, h, key=k1),
            "hidden": jp.LIF(TAU),
            "w_rec": jp.Dense(h, h, key=k2),
            "w_out": jp.Dense(h, n_out, key=k3),
            "out": jp.LeakyIntegrator(TAU),
        },
        edges=[("input", "w_in"), ("w_in", "hidden"),
               ("hidden", "w_rec"), ("w_rec", "hidden"),
               ("hidden", "w_out"), ("w_out", "out")],
        output="out",
    )
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 2))
    return _jaxpike_build(net, kind, xs, jnp.asarray(y), jp.max_membrane_logits,
                          jp.cross_entropy)


def build_jaxpike_c(cfg, kind, data):
    import jaxpike as jp

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    net = jp.Sequential(
        jp.Conv2d(2, 12, 5, padding="VALID", key=k1), jp.Pool2d(2, mode="max"), jp.LIF(TAU),
        jp.Conv2d(12, 32, 5, padding="VALID", key=k2), jp.Pool2d(2, mode="max"), jp.LIF(TAU),
        jp.Flatten(), jp.Dense(800, cfg["n_out"], key=k3), jp.LIF(TAU),
    )
    x, y = data
    xs = jnp.asarray(x.transpose(1, 0, 3, 4, 2))  # jaxpike convs are NHWC
    return _jaxpike_build(net, kind, xs, jnp.asarray(y), jp.spike_count, jp.cross_entropy)


def build_jaxpike_d(cfg, kind, data):
    import jaxpike as jp

    n = cfg["n"]
    net = jp.Sequential(jp.Dense(n, n, key=jax.random.key(0)), jp.LIF(TAU))
    xs = jnp.asarray(data[0].transpose(1, 0, 2))
    return _jaxpike_build(net, kind, xs, None, lambda o: o,
                          lambda o, _: jp.spike_rate(o).mean())


def _jax_step(logits, params, xs, y, kind):
    from jaxstep import forward_step, train_step

    if kind == "forward":
        return forward_step(logits, params, (xs,))
    return train_step(lambda p, xs, y: _ce(logits(p, xs), y), params, (xs, y))
