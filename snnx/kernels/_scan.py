"""A neuron's whole time loop as one Pallas kernel, forward and backward.

The grid runs over blocks of neurons (and, under `jax.vmap`, over samples: Pallas' batching
rule adds that grid axis); each program holds its block for the whole time axis and keeps
the neuron state in registers while it loops over time. The step inside the loop is the
neuron's own one-step call, traced into the kernel, so the forward numbers are the XLA
scan's (same operations in the same order: spikes identical). The backward kernel walks
time in reverse and applies the vector-Jacobian product of that same step (so the
surrogate derivative, detached resets and frozen parameters mean what they mean in the
scan), accumulating the gradients of the neuron's parameters in registers too; it is wired
up with `jax.custom_vjp`.

What the kernel can express: any neuron whose one-step call is elementwise over neurons
(every array leaf of the neuron, every state leaf, the input and the output have the
layer's shape or broadcast to it) and does not draw random numbers. `snnx.LIF`, `snnx.LI`,
`snnx.CuBaLIF` and `snnx.CuBaLI` declare it (`AbstractFusedNeuron`), with every reset mode,
`detach_reset`, `reset_delay`, both discretisations (`exact`, `euler`), scalar or
per-neuron parameters, any deterministic surrogate (the stochastic `EscapeNoise` falls back
to the XLA scan), and any `trainable` parameters (tau, threshold, reset, leak, gains).
Not expressed: neurons that mix neurons within a step (`snnx.Recurrent`'s recurrent
matmul stays in the XLA scan around its neuron), ALIF/AdEx/Izhikevich/IF (not declared;
their steps are elementwise too, so declaring them is a one-line change to test), and
step-major execution (always the XLA scan).
"""

import functools
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _read_row(ref, t):
    return ref[pl.ds(t, 1), :][0]


def _write_row(ref, t, value):
    ref[pl.ds(t, 1), :] = value[None].astype(ref.dtype)


def _step_fn(static, state_def, y_dtype):
    """The neuron's step on one block: `(x, state_leaves, param_leaves) -> (y, state_leaves)`."""

    def step(x, s_leaves, p_leaves):
        neuron = eqx.combine(jax.tree.unflatten(static[0], p_leaves), static[1])
        y, new = neuron(x, jax.tree.unflatten(state_def, s_leaves))
        new_leaves = [a.astype(b.dtype) for a, b in zip(jax.tree.leaves(new), s_leaves)]
        return y.astype(y_dtype), new_leaves

    return step


class _Opts(NamedTuple):
    """Static kernel options (custom_vjp's non-differentiable argument)."""

    block: int
    interpret: bool
    y_dtype: Any


def _forward_call(step, xs, s0, params, opts):
    """`(ys (T, N), traces [(T, N)] per state leaf)` by the forward kernel."""
    T, N = xs.shape
    n_s, n_p = len(s0), len(params)
    block, y_dtype = opts.block, opts.y_dtype

    def kernel(*refs):
        x_ref, s_refs, p_refs = refs[0], refs[1:1 + n_s], refs[1 + n_s:1 + n_s + n_p]
        y_ref, tr_refs = refs[1 + n_s + n_p], refs[2 + n_s + n_p:]
        p = [r[...] for r in p_refs]

        def body(t, s):
            y, s = step(_read_row(x_ref, t), list(s), p)
            _write_row(y_ref, t, y)
            for r, a in zip(tr_refs, s):
                _write_row(r, t, a)
            return tuple(s)

        jax.lax.fori_loop(0, T, body, tuple(r[...] for r in s_refs))

    row = pl.BlockSpec((T, block), lambda j: (0, j))
    vec = pl.BlockSpec((block,), lambda j: (j,))
    out = pl.pallas_call(
        kernel,
        grid=(N // block,),
        in_specs=[row] + [vec] * (n_s + n_p),
        out_specs=[row] * (1 + n_s),
        out_shape=[jax.ShapeDtypeStruct((T, N), y_dtype)]
        + [jax.ShapeDtypeStruct((T, N), a.dtype) for a in s0],
        interpret=opts.interpret,
        name="snnx_fused_neuron_forward",
    )(xs, *s0, *params)
    return out[0], list(out[1:])


def _backward_call(step, xs, s0, params, traces, dys, dtraces, *, block, interpret):
    """Reverse-time kernel: `(dxs, ds0, dparams)` from the output and trace cotangents."""
    T, N = xs.shape
    n_s, n_p = len(s0), len(params)

    def kernel(*refs):
        it = iter(refs)
        x_ref = next(it)
        s0_refs = [next(it) for _ in range(n_s)]
        p_refs = [next(it) for _ in range(n_p)]
        tr_refs = [next(it) for _ in range(n_s)]
        dy_ref = next(it)
        dtr_refs = [next(it) for _ in range(n_s)]
        dx_ref = next(it)
        ds0_refs = [next(it) for _ in range(n_s)]
        dp_refs = [next(it) for _ in range(n_p)]
        p = [r[...] for r in p_refs]
        s_init = [r[...] for r in s0_refs]

        def body(k, carry):
            lam, gp = carry
            t = T - 1 - k
            prev = [jnp.where(t > 0, _read_row(r, jnp.maximum(t - 1, 0)), a)
                    for r, a in zip(tr_refs, s_init)]
            _, vjp = jax.vjp(lambda x, s, q: step(x, s, q), _read_row(x_ref, t), prev, p)
            # the state after step t is read by step t + 1 (carried in `lam`) and recorded
            lam_t = [a + _read_row(r, t) for a, r in zip(lam, dtr_refs)]
            dx, dprev, dq = vjp((_read_row(dy_ref, t), lam_t))
            _write_row(dx_ref, t, dx)
            return tuple(dprev), tuple(a + b for a, b in zip(gp, dq))

        zeros_s = tuple(jnp.zeros_like(a) for a in s_init)
        zeros_p = tuple(jnp.zeros_like(a) for a in p)
        lam, gp = jax.lax.fori_loop(0, T, body, (zeros_s, zeros_p))
        for r, a in zip(ds0_refs, lam):
            r[...] = a.astype(r.dtype)
        for r, a in zip(dp_refs, gp):
            r[...] = a.astype(r.dtype)

    row = pl.BlockSpec((T, block), lambda j: (0, j))
    vec = pl.BlockSpec((block,), lambda j: (j,))
    out = pl.pallas_call(
        kernel,
        grid=(N // block,),
        in_specs=[row] + [vec] * (n_s + n_p) + [row] * (n_s + 1 + n_s),
        out_specs=[row] + [vec] * (n_s + n_p),
        out_shape=[jax.ShapeDtypeStruct((T, N), xs.dtype)]
        + [jax.ShapeDtypeStruct((N,), a.dtype) for a in s0]
        + [jax.ShapeDtypeStruct((N,), a.dtype) for a in params],
        interpret=interpret,
        name="snnx_fused_neuron_backward",
    )(xs, *s0, *params, *traces, dys, *dtraces)
    return out[0], list(out[1:1 + n_s]), list(out[1 + n_s:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(step, opts, xs, s0, params):
    return _forward_call(step, xs, s0, params, opts)


def _fused_fwd(step, opts, xs, s0, params):
    ys, traces = _forward_call(step, xs, s0, params, opts)
    return (ys, traces), (xs, s0, params, traces)


def _fused_bwd(step, opts, res, cts):
    # custom_vjp instantiates zero cotangents (symbolic_zeros=False), so both are arrays
    xs, s0, params, traces = res
    dys, dtraces = cts
    dxs, ds0, dp = _backward_call(step, xs, s0, params, traces, dys, list(dtraces),
                                  block=opts.block, interpret=opts.interpret)
    return dxs, ds0, dp


_fused.defvjp(_fused_fwd, _fused_bwd)


def fused_scan(neuron, xs, state, *, block: int = 128, interpret: bool = False):
    """Run a neuron over all time steps with the fused kernels (one sample).

    **Arguments:**

    - `neuron`: a neuron whose one-step call is elementwise over neurons (see the module
        docstring), e.g. `snnx.LIF`.
    - `xs`: inputs `(T, *layer_shape)`.
    - `state`: the initial state (leaves of the layer's shape).
    - `block`: neurons per program (rounded down to a power of two at most the padded
        layer size).
    - `interpret`: run the kernels in Pallas' interpreter (any backend; how CPU tests run).

    **Returns:**

    `(ys, final_state, trace)`: outputs `(T, *layer_shape)`, the state after the last step,
    and the state after every step (leading time axis).
    """
    T = xs.shape[0]
    shape = tuple(xs.shape[1:])
    N = 1
    for d in shape:
        N *= int(d)
    bn = min(_next_pow2(int(block)), _next_pow2(N))
    n_pad = -(-N // bn) * bn
    params, static_part = eqx.partition(neuron, eqx.is_array)
    p_leaves, p_def = jax.tree.flatten(params)
    s_leaves, s_def = jax.tree.flatten(state)
    y_dtype = jax.eval_shape(lambda x, s: neuron(x, s)[0], xs[0], state).dtype

    def flat(a, mode):
        a = jnp.broadcast_to(a, shape).reshape(N)
        return jnp.pad(a, (0, n_pad - N), mode=mode) if n_pad > N else a

    xf = xs.reshape(T, N)
    if n_pad > N:
        xf = jnp.pad(xf, ((0, 0), (0, n_pad - N)))
    # Padded neurons get the edge parameters (finite, valid) and zero input; their outputs
    # are dropped and their cotangents are zero, so they add nothing to any gradient.
    pf = [flat(a, "edge") for a in p_leaves]
    sf = [flat(a, "constant") for a in s_leaves]
    step = _step_fn((p_def, static_part), s_def, y_dtype)
    ys, traces = _fused(step, _Opts(bn, bool(interpret), y_dtype), xf, sf, pf)
    ys = ys[:, :N].reshape((T,) + shape)
    traces = [a[:, :N].reshape((T,) + shape) for a in traces]
    trace = jax.tree.unflatten(s_def, traces)
    final = jax.tree.map(lambda a: a[-1], trace)
    return ys, final, trace

