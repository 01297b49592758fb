"""Hand-written plain-JAX versions of the benchmark networks: the speed reference.

Written the way an expert would write them by hand: time-major arrays, every matmul /
convolution hoisted out of the time loop (one big op over all T*B rows), and `lax.scan` only
over the elementwise neuron dynamics. Same maths as the snnx models (exact-decay LIF with
subtractive, detached reset; fast-sigmoid surrogate with alpha=25; LI readout), with the
weights copied from the snnx model so both compute the same numbers.
"""

import math

import jax
import jax.numpy as jnp

ALPHA = 25.0


@jax.custom_jvp
def spike(x):
    return (x > 0).astype(x.dtype)


@spike.defjvp
def _spike_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return spike(x), dx / (1.0 + ALPHA * jnp.abs(x)) ** 2


def coefficients(tau, dt=1.0):
    beta = math.exp(-dt / tau)
    return beta, 1.0 - beta


def lif_scan(cur, tau, threshold=1.0, unroll=1):
    """LIF over time-major currents `(T, ...)`: returns spikes `(T, ...)`."""
    beta, gain = coefficients(tau)

    def f(v, c):
        v = beta * v + gain * c
        s = spike(v - threshold)
        v = v - jax.lax.stop_gradient(s) * threshold
        return v, s

    _, s = jax.lax.scan(f, jnp.zeros(cur.shape[1:], cur.dtype), cur, unroll=unroll)
    return s


def li_scan(cur, tau, unroll=1):
    beta, gain = coefficients(tau)

    def f(v, c):
        v = beta * v + gain * c
        return v, v

    _, v = jax.lax.scan(f, jnp.zeros(cur.shape[1:], cur.dtype), cur, unroll=unroll)
    return v


def dense(p, x):
    # p: (W (out, in), b (out,)) as in eqx.nn.Linear.
    w, b = p
    return x @ w.T + b


def linear_params(lin):
    return (lin.weight, lin.bias)


# (a) SHD-shaped feed-forward: 700 -> 128 LIF -> 128 LIF -> 20 LI.
def ff_logits(params, xs, tau=10.0, unroll=1):
    """`xs`: time-major `(T, B, 700)`. Returns logits `(B, 20)`: readout max over time."""
    h = lif_scan(dense(params[0], xs), tau, unroll=unroll)
    h = lif_scan(dense(params[1], h), tau, unroll=unroll)
    v = li_scan(dense(params[2], h), tau, unroll=unroll)
    return v.max(axis=0)


# (b) recurrent: 700 -> 256 recurrent LIF -> 20 LI. The recurrent matmul must stay inside
# the loop; the input projection is hoisted.
def rec_logits(params, xs, tau=10.0, unroll=1):
    (w_in, b_in), w_rec, out = params
    beta, gain = coefficients(tau)
    cur = xs @ w_in.T + b_in  # (T, B, 256)

    def f(carry, c):
        v, s_prev = carry
        v = beta * v + gain * (c + s_prev @ w_rec.T)
        s = spike(v - 1.0)
        v = v - jax.lax.stop_gradient(s)
        return (v, s), s

    z = jnp.zeros(cur.shape[1:], cur.dtype)
    _, s = jax.lax.scan(f, (z, z), cur, unroll=unroll)
    v = li_scan(dense(out, s), tau, unroll=unroll)
    return v.max(axis=0)


# (c) N-MNIST-shaped conv: 2x34x34 -> 12C5 -> MP2 -> LIF -> 32C5 -> MP2 -> LIF -> 10 LIF.
def _conv(p, x):
    # x: (N, C, H, W); p: (weight (O, I, k, k), bias (O, 1, 1)) as in eqx.nn.Conv2d.
    w, b = p
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + b[None]


def _maxpool2(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def conv_logits(params, xs, tau=10.0, unroll=1):
    """`xs`: time-major `(T, B, 2, 34, 34)`; returns the output spike counts `(B, 10)`."""
    T, B = xs.shape[:2]
    h = _maxpool2(_conv(params[0], xs.reshape((T * B,) + xs.shape[2:])))
    h = lif_scan(h.reshape((T, B) + h.shape[1:]), tau, unroll=unroll)
    h = _maxpool2(_conv(params[1], h.reshape((T * B,) + h.shape[2:])))
    h = lif_scan(h.reshape((T, B) + h.shape[1:]), tau, unroll=unroll)
    h = dense(params[2], h.reshape(T, B, -1))
    s = lif_scan(h, tau, unroll=unroll)
    return s.sum(axis=0)


# (d) scaling: Linear N -> N then LIF, T=500.
def scale_out(params, xs, tau=10.0, unroll=1):
    s = lif_scan(dense(params, xs), tau, unroll=unroll)
    return s
