"""`snnx.run`: a whole sequence through a model, planned layer-major or step-major."""

from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from .._checks import check_key, is_int
from ..events import SpikeEvents
from ..layers._abstract import LayerRecord
from ..layers._util import init_layer_state, is_stateful, layer_name
from ..layers.sequential import Sequential
from ._backend import default_unroll
from ._fused import AbstractNeuronScan, as_neuron_scan
from ._planner import RunContext
from ._remat import AbstractRemat, as_remat
from ._table import all_steps_form

Mode = Literal["auto", "layer", "step"]


def _chunked_scan(f, carry, xs, *, length, unroll, chunk):
    """`lax.scan` of `f` where every `chunk` steps are one checkpointed block (0: plain)."""
    if not chunk:
        return jax.lax.scan(f, carry, xs, length=length, unroll=unroll)
    n_chunks, rest = divmod(length, chunk)

    def block(c, block_xs):
        return jax.lax.scan(f, c, block_xs, length=chunk, unroll=unroll)

    head = jax.tree.map(lambda a: a[: n_chunks * chunk].reshape((n_chunks, chunk) + a.shape[1:]),
                        xs)
    carry, ys = jax.lax.scan(jax.checkpoint(block, prevent_cse=False), carry, head,
                             length=n_chunks)
    ys = jax.tree.map(lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:]), ys)
    if rest:
        tail = jax.tree.map(lambda a: a[n_chunks * chunk:], xs)
        carry, ys_tail = jax.lax.scan(f, carry, tail, length=rest, unroll=unroll)
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return carry, ys


def _all_steps(model, xs, state, keys, ctx):
    """The whole model over all steps (layer-major): `(ys, state, records)`."""
    if isinstance(model, Sequential):  # records: one per layer of the stack
        return ctx.run_layers(model.layers, xs, state, keys)
    ys, state, trace = ctx.run_layer(model, xs, state, keys)
    return ys, state, ((LayerRecord(ys, trace),) if ctx.record else None)


def _all_steps_chunked(model, xs, state, keys, ctx, chunk):
    """Layer-major execution over time chunks of `chunk` steps, each chunk checkpointed.

    Only the layer states at chunk boundaries are kept for the backward pass; a chunk's
    activations (every layer's currents and spikes) are recomputed from them. Per-step remat
    inside layer-major execution cannot do this: the currents between layers, `(T, ...)`
    arrays, would still be stored. Each chunk still runs its stateless layers as one matmul
    over `chunk` steps, so the speed stays close to plain layer-major execution.
    """

    def body(s, i):
        # Slice the chunk out of the closed-over inputs: scanning over a reshaped
        # `(n_chunks, chunk, ...)` copy would, under the user's `vmap`, also transpose (copy)
        # the whole input, which at long T is the largest array of all.
        x_c, k_c = jax.tree.map(
            lambda a: jax.lax.dynamic_slice_in_dim(a, i * chunk, chunk), (xs, keys)
        )
        h, s, recs = _all_steps(model, x_c, s, k_c, ctx)
        return s, (h, recs)

    length = xs.shape[0]
    n_chunks, rest = divmod(length, chunk)
    state, out = jax.lax.scan(
        jax.checkpoint(body, prevent_cse=False), state, jnp.arange(n_chunks)
    )
    ys, recs = jax.tree.map(lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:]), out)
    if rest:
        tail_x, tail_k = jax.tree.map(lambda a: a[n_chunks * chunk:], (xs, keys))
        ys_t, state, recs_t = _all_steps(model, tail_x, state, tail_k, ctx)
        ys, recs = jax.tree.map(
            lambda a, b: jnp.concatenate([a, b]), (ys, recs), (ys_t, recs_t)
        )
    return ys, state, recs


def _step_major(model, xs, state, keys, ctx, chunk):
    seq = isinstance(model, Sequential)  # records: one per layer of the stack

    def step(s, inp):
        x, k = inp
        if seq:
            y, s, recs = model._step(x, s, k, record=ctx.record)
            return s, ((y, recs) if ctx.record else y)
        y, s = model(x, s, key=k)
        return s, ((y, s) if ctx.record else y)

    state, ys = _chunked_scan(step, state, (xs, keys), length=xs.shape[0], unroll=ctx.unroll,
                              chunk=chunk)
    if not ctx.record:
        return ys, state, None
    ys, recs = ys
    if seq:
        layer_recs = tuple(
            LayerRecord(out, s if is_stateful(layer) else None)
            for layer, (out, s) in zip(model.layers, recs)
        )
        return ys, state, layer_recs
    return ys, state, (LayerRecord(ys, recs),)


def _settle_dtypes(model, step_shape, dtype, state):
    """The state in the dtypes one step gives it (nothing is computed).

    States start in float32, but under `jax_enable_x64` parameters or inputs in float64
    promote the step's result, and a scan needs its carry to keep one dtype. Only widening
    casts happen here: a float32 state meeting float64 parameters becomes float64.
    """
    x = jax.ShapeDtypeStruct(step_shape, dtype)
    after = jax.eval_shape(lambda xx, s: model(xx, s, key=jax.random.key(0))[1], x, state)
    return jax.tree.map(
        lambda a, b: a.astype(b.dtype) if jnp.result_type(a) != b.dtype else a, state, after
    )


def _check_unroll(unroll):
    if unroll is None:
        return default_unroll()
    if unroll is True or (is_int(unroll) and unroll >= 1):
        return unroll if unroll is True else int(unroll)
    raise ValueError(
        f"`unroll` must be an int >= 1 (time steps per scan iteration), True (the whole "
        f"sequence) or None (the backend's default, `snnx.default_unroll()`), got {unroll!r}."
    )


def run(
    model,
    xs: ArrayLike | SpikeEvents,
    state: PyTree[Array] | None = None,
    *,
    key: PRNGKeyArray | None = None,
    mode: Mode = "auto",
    unroll: int | bool | None = None,
    remat: bool | int | AbstractRemat = False,
    record: bool = False,
    neuron_scan: AbstractNeuronScan | None = None,
):
    """Run a model over a whole input sequence (one sample; batch with `jax.vmap`).

    The run is planned from what each layer declares (`snnx.layers.AbstractAllSteps`,
    `AbstractStatefulLayer`). Two execution orders give the same numbers:

    - **layer-major** (`mode="layer"`): each layer runs over all time steps before the next
        (`Linear` as one large matmul, pools and convolutions on all frames at once, neuron
        dynamics scanned, a layer's own all-steps form where it declares one). The default
        for `snnx.Sequential` and for an `snnx.Graph` without feedback edges, and the fast
        way to train feed-forward networks.
    - **step-major** (`mode="step"`): one time step goes through the whole model before the
        next, as in streaming inference. The only order for a graph with feedback edges.

    ```python
    outs, state = snnx.run(model, xs)                          # xs: (T, *input_shape)
    outs, state = jax.vmap(lambda x: snnx.run(model, x))(xb)   # xb: (B, T, *input_shape)
    ```

    **Arguments:**

    - `model`: an `snnx.Sequential`, an `snnx.Graph`, a neuron, or any
        `snnx.layers.AbstractStatefulLayer`.
    - `xs`: inputs with time first, shape `(T, *input_shape)`. Boolean or integer spike
        arrays are converted to float32. An `snnx.SpikeEvents` of one sample (event table
        `(T, max_events)`) selects the event-driven input projection in layer-major mode: a
        first `eqx.nn.Linear` or `snnx.SparseLinear` (any `AbstractEventReader`) sums the
        weight columns of the active inputs instead of multiplying the whole raster (same
        numbers up to float summation order, same gradients; ~4x less work for the
        projection at 3% density). Layers that do not read events, and step-major mode,
        get the dense spikes.
    - `state`: initial state for one sample; default `model.init_state(xs.shape[1:])`.
    - `key`: optional PRNG key (dropout, stochastic spiking). Step `t` of layer `i` gets
        `split(fold_in(key, t), n_layers)[i]` in both modes.
    - `mode`: `"auto"` (default: layer-major wherever the model can run it), `"layer"`
        (an error if the model cannot, e.g. a graph with feedback edges) or `"step"`.
    - `unroll`: time steps per scan iteration, an int >= 1 or True (all); `None` picks
        `snnx.default_unroll()`.
    - `remat`: rematerialisation for long sequences, one meaning in both orders: keep the
        state every `k` steps and recompute the steps in between (`snnx.Remat(every=k)`,
        or the int `k`; `True` or `snnx.Remat()` picks `k = ceil(sqrt(T))`; False, 0 or
        `snnx.NoRemat()` for none). Layer-major runs the whole stack over chunks of `k`
        steps, so the `(T, ...)` currents between layers are not stored either. At T=2000
        on an SHD-shaped network `True` needs 0.44x the memory at no extra time (bench/).
    - `record`: if True, also return every layer's outputs and states over time.
    - `neuron_scan`: how neurons with a fused form (`snnx.LIF`, `LI`, `CuBaLIF`, `CuBaLI`:
        `snnx.kernels.AbstractFusedNeuron`) run their time loop in layer-major mode:
        `snnx.engine.XLAScan()` (a `lax.scan` of the one-step call) or
        `snnx.engine.PallasScan()` (one Pallas kernel over all steps, forward and
        backward; opt-in, GPU speed unmeasured). None: `snnx.engine.default_neuron_scan()`
        (`XLAScan` on every backend). Same numbers either way.

    **Returns:**

    `(outputs, final_state)`, where `outputs` has shape `(T, *output_shape)`; with
    `record=True`, `(outputs, final_state, records)`, where `records` is a tuple with one
    `snnx.LayerRecord(output, state)` per layer (one entry for a non-`Sequential` model).

    **Raises:**

    `ValueError` for a wrong input rank or shape (naming the layer), a state that does not
    match the model, an unknown `mode`, `mode="layer"` on a model that runs step by step
    only, or an `unroll`/`remat` that is not one of the values above.
    """
    if not is_stateful(model):
        raise TypeError(
            f"`model` must be stateful (an `snnx.layers.AbstractStatefulLayer`): an "
            f"`snnx.Sequential`, a neuron, or a layer like them; got {type(model).__name__}. "
            f"Wrap stateless layers and neurons in `snnx.Sequential([...])`."
        )
    if mode not in ("auto", "layer", "step"):
        raise ValueError(f"`mode` must be 'auto', 'layer' or 'step', got {mode!r}.")
    ctx = RunContext(unroll=_check_unroll(unroll), record=bool(record),
                     neuron_scan=as_neuron_scan(neuron_scan))
    remat = as_remat(remat)
    events = isinstance(xs, SpikeEvents)
    if events:
        if xs.index.ndim != 2:
            raise ValueError(
                f"`xs` events must be one sample, dense shape (T, n_in), got {xs.shape}; batch "
                f"with `jax.vmap(lambda e: snnx.run(model, e))(events)`."
            )
    else:
        xs = jnp.asarray(xs)
    if xs.ndim < 1 or xs.shape[0] < 1:
        raise ValueError(
            f"`xs` must have a leading time axis of length >= 1, got shape {xs.shape}. For one "
            f"time step, call the model directly: `model(x, state)`."
        )
    if not events and not jnp.issubdtype(xs.dtype, jnp.floating):
        xs = xs.astype(jnp.float32)
    step_shape = tuple(xs.shape[1:])
    # shapes are propagated in the input's dtype: a float64 Conv cannot take a float32 probe
    dtype = jnp.float32 if events else xs.dtype
    if state is None:
        state = init_layer_state(model, step_shape, dtype)
    else:
        _check_state(model, state, step_shape, dtype)
    state = _settle_dtypes(model, step_shape, dtype, state)

    T = xs.shape[0]
    keys = None
    if key is not None:
        check_key(key, what="or None for a deterministic model")
        keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(T))
    chunk = remat.chunk_length(T)

    form = all_steps_form(model)
    declines = form is not None and not form.has_all_steps()
    if mode == "layer" and declines:
        # A form that declines says why from `all_steps` (the contract); make sure it does.
        form.all_steps(xs, state, keys=keys, context=ctx)
        raise ValueError(
            f"`mode='layer'` cannot be honoured: this {layer_name(model)} runs step by step "
            f"only; use `mode='step'` or `'auto'`."
        )
    if mode == "step" or declines:
        if events:
            xs = xs.to_dense()  # the event path is the projection of all steps at once
        ys, state, recs = _step_major(model, xs, state, keys, ctx, chunk)
    elif chunk:
        ys, state, recs = _all_steps_chunked(model, xs, state, keys, ctx, chunk)
    else:
        ys, state, recs = _all_steps(model, xs, state, keys, ctx)
    if record:
        return ys, state, recs
    return ys, state


def _check_state(model, state, step_shape, dtype):
    expected = jax.eval_shape(lambda: init_layer_state(model, step_shape, dtype))
    exp_struct = jax.tree.structure(expected)
    got_struct = jax.tree.structure(state)
    if exp_struct != got_struct:
        raise ValueError(
            f"`state` does not have the structure the model needs for inputs of per-step shape "
            f"{step_shape}: expected {exp_struct}, got {got_struct}. Create it with "
            f"`model.init_state({step_shape})` or leave `state=None`."
        )
    for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(state)):
        if tuple(e.shape) != tuple(jnp.shape(g)):
            raise ValueError(
                f"`state` has a leaf of shape {tuple(jnp.shape(g))} where the model needs "
                f"{tuple(e.shape)} for inputs of per-step shape {step_shape}. Batched states are "
                f"not accepted here: `snnx.run` acts on one sample, batch with `jax.vmap`."
            )


