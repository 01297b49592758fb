"""Per-synapse transmission delays for EventProp layers (Mészáros, Knight & Nowotny 2025).

A spike of presynaptic neuron `i` at time `t` reaches postsynaptic neuron `j` at
`t + d[j, i]`. The arrival is an in-step input event of the step it falls in, with its own
offset on every synapse, so a delayed layer reads its input through one pointer per synapse
(`(N, M)`) into the presynaptic spike buffers: a synapse's arrivals come in the order of the
presynaptic spikes, as its delay is fixed. Two spikes of one neuron in consecutive steps less
than `dt` apart can arrive in the same step on a synapse (three cannot), so every step reads
two slots per synapse. The adjoint reads the same arrivals backwards; the arrival-time
derivative of each event is at once the gradient of its synapse's delay and (summed over the
postsynaptic neurons) the presynaptic spike-time cotangent.

A dense first-layer input (step `s` is a Dirac input at `s dt`) arrives on synapse `(j, i)`
at `s dt + d[j, i]`: exactly one input step per synapse and step, `q = floor(d / dt)` steps
back, at the fixed offset `d - q dt`.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..layers.delayed import DelayedLinear


def effective(d):
    """The delays the forward uses: negative (or NaN) ones act as 0, with no gradient."""
    return jnp.where(d >= 0, d, 0.0)


def hidden_read(spec, inp, d, p, t):
    """The arrival of slot `p[j, i]` of presynaptic neuron `i` on synapse `(j, i)`, if it
    falls in step `t`: `(valid, offset, slot)`, each `(N, M)`."""
    times, steps = inp
    cap = steps.shape[1]
    cols = jnp.arange(steps.shape[0])[None, :]
    slot = jnp.clip(p, 0, cap - 1)
    st = steps[cols, slot]
    a = times[cols, slot] - st * spec.dt + d  # arrival, from the start of the spike's step
    carry = jnp.clip(jnp.floor(a / spec.dt), 0, spec.n_steps + 1)
    valid = (p >= 0) & (p < cap) & (st >= 0) & (st + carry.astype(jnp.int32) == t)
    off = jnp.where(valid, a - carry * spec.dt, 0.0)
    return valid, jnp.clip(off, 0.0, spec.dt), slot


def hidden_events(spec, inp, d, p, t, *, backward=False):
    """Both possible arrivals of step `t` on every synapse, read forwards from the next
    undelivered slot (`backward=False`) or backwards from the last delivered one; returns
    `((valid, offset, slot) x 2, new pointer)`."""
    sign = -1 if backward else 1
    first = hidden_read(spec, inp, d, p, t)
    second = hidden_read(spec, inp, d, p + sign, t)
    second = (second[0] & first[0],) + second[1:]
    moved = first[0].astype(jnp.int32) + second[0].astype(jnp.int32)
    return first, second, p + sign * moved


def hidden_lost(inp, p_end):
    """Arrivals past the trial end: stored presynaptic spikes no synapse pointer reached."""
    n_stored = jnp.sum(inp[1] >= 0, axis=1).astype(jnp.int32)
    return jnp.sum(n_stored[None, :] - p_end, dtype=jnp.int32)


def input_split(spec, d):
    """A first-layer delay as whole steps back `q` (int) and the in-step offset `r`."""
    q = jnp.clip(jnp.floor(d / spec.dt), 0, spec.n_steps)
    r = jnp.clip(d - q * spec.dt, 0.0, spec.dt)
    return q.astype(jnp.int32), r


def input_amplitudes(xs, q, t):
    """`xs[t - q[j, i], i]` (0 before the start): what each synapse delivers in step `t`."""
    src = t - q
    cols = jnp.arange(xs.shape[1])[None, :]
    return jnp.where(src >= 0, xs[jnp.clip(src, 0, xs.shape[0] - 1), cols], 0.0), src


def input_lost(xs, q):
    """Nonzero input steps whose arrival on some synapse falls past the trial end."""
    nz = (xs != 0).astype(jnp.int32)
    # tail[k, i]: nonzero steps among the last k of channel i
    tail = jnp.concatenate([jnp.zeros((1, xs.shape[1]), jnp.int32),
                            jnp.cumsum(nz[::-1], axis=0)], axis=0)
    cols = jnp.arange(xs.shape[1])[None, :]
    return jnp.sum(tail[q, cols], dtype=jnp.int32)


def check_delays(delays, linears, dt):
    """`delays` as one float `(N_out, N_in)` array or None per layer (checked when
    concrete: finite and >= 0)."""
    n_layers = len(linears)
    if delays is None:
        return (None,) * n_layers
    if not isinstance(delays, (tuple, list)) or len(delays) != n_layers:
        raise ValueError(
            f"`delays` needs one entry (an (N_out, N_in) array of delays, or None) per neuron "
            f"layer ({n_layers}), got {delays!r:.80}."
        )
    out = []
    for i, (lin, d) in enumerate(zip(linears, delays)):
        if d is None:
            out.append(None)
            continue
        d = jnp.asarray(d)
        shape = (lin.out_features, lin.in_features)
        if d.shape != shape:
            raise ValueError(
                f"`delays[{i}]` must have the shape of `layers[{2 * i}].weight`, (N_out, N_in) "
                f"= {shape}, got {d.shape}."
            )
        if not jnp.issubdtype(d.dtype, jnp.floating):
            d = d.astype(jnp.result_type(float))
        if not isinstance(d, jax.core.Tracer):
            host = np.asarray(d)
            if not np.all(np.isfinite(host)):
                raise ValueError(f"`delays[{i}]` holds non-finite values; give finite delays "
                                 f"(in the time unit of `dt` = {dt}).")
            if np.any(host < 0):
                raise ValueError(
                    f"`delays[{i}]` must be >= 0 (a spike cannot arrive before it is sent), "
                    f"got a minimum of {host.min()}; clip them, e.g. `jnp.maximum(d, 0.0)`."
                )
        out.append(d)
    return tuple(out)


def delayed_projection(i, lin, d, dt):
    """`to_sequential`'s form of a delayed projection: a `DelayedLinear` with whole-step
    delays (the rounding warned), then the bias."""
    steps = np.maximum(np.asarray(d, np.float64) / dt, 0.0)
    q = np.round(steps).astype(np.int32)
    moved = np.abs(q - steps) > 1e-9
    if moved.any():
        warnings.warn(
            f"`to_sequential`: {int(moved.sum())} delays of layer {i} rounded to whole steps of "
            f"`dt` = {dt} (by up to {float(np.max(np.abs(q - steps))) * dt:.3g} time units); the "
            "discrete network's spikes differ accordingly.", stacklevel=3)
    layers = [DelayedLinear(lin.in_features, lin.out_features, int(q.max()),
                            delay=jnp.asarray(q), weight=lin.weight, dt=dt)]
    if lin.bias is not None:
        layers.append(eqx.nn.Lambda(jax.tree_util.Partial(jnp.add, lin.bias)))
    return layers
