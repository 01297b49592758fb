"""`snnx.run`: a whole sequence through a model, layer-major or step-major."""

import functools
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from .events import SpikeEvents, project
from .layers._util import call_stateless, is_stateful
from .layers.pool import tiled_pool
from .layers.sequential import LayerRecord, Sequential
from .layers.sparse import SparseLinear

Mode = Literal["auto", "layer", "step"]


def default_unroll() -> int:
    """The scan unroll used when `snnx.run(..., unroll=None)`, chosen per backend.

    On CPU each scan iteration costs little and unrolling only grows the program, so the
    default is 1. On GPU/TPU every iteration launches kernels and unrolling a few steps lets
    XLA fuse them; the default there is 8.
    """
    return 1 if jax.default_backend() == "cpu" else 8


# XLA:CPU hands convolutions to YNNPACK by default, which on the SNN shapes measured here
# (N-MNIST-sized 5x5 convolutions, batch x time folded together) runs the training step 2x
# slower than XLA's own convolution (bench/, workload (c)); dots stay with the library.
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def _probe_options(backend: str) -> tuple:
    if backend != "cpu":
        return ()
    try:  # an experimental XLA option: use it only if this jaxlib accepts it
        jax.jit(lambda x: x + 1, compiler_options=_CPU_OPTIONS).lower(
            jnp.float32(0)).compile()
    except Exception:
        return ()
    return tuple(_CPU_OPTIONS.items())


def compiler_options() -> dict:
    """XLA compiler options that snnx compiles its own programs with, chosen per backend.

    `snnx.fit`, `snnx.evaluate` and `snnx.make_step` use them; pass them to your own
    `jax.jit` / `eqx.filter_jit` to get the same code:

    ```python
    step = eqx.filter_jit(step, compiler_options=snnx.compiler_options())
    ```

    On CPU this keeps convolutions in XLA's own emitter instead of YNNPACK (2x faster
    training on the N-MNIST-shaped benchmark, same results); elsewhere it is empty. If the
    installed jaxlib does not know the option, it is empty too.
    """
    return dict(_probe_options(jax.default_backend()))


def _scan(f, carry, xs, *, length, unroll, remat):
    """`lax.scan` with optional rematerialisation.

    `remat=True` checkpoints every step (only the carries are stored for the backward pass);
    an int `k > 1` stores the carry every `k` steps and recomputes the `k` steps in between
    (memory ~ T/k + k states instead of T).
    """
    if remat is False or remat is None or remat == 0:
        return jax.lax.scan(f, carry, xs, length=length, unroll=unroll)
    if remat is True or remat == 1:
        return jax.lax.scan(jax.checkpoint(f, prevent_cse=False), carry, xs, length=length,
                            unroll=unroll)
    k = int(remat)
    n_chunks, rest = divmod(length, k)

    def chunk(c, chunk_xs):
        return jax.lax.scan(f, c, chunk_xs, length=k, unroll=unroll)

    head = jax.tree.map(lambda a: a[: n_chunks * k].reshape((n_chunks, k) + a.shape[1:]), xs)
    carry, ys = jax.lax.scan(jax.checkpoint(chunk, prevent_cse=False), carry, head,
                             length=n_chunks)
    ys = jax.tree.map(lambda a: a.reshape((n_chunks * k,) + a.shape[2:]), ys)
    if rest:
        tail = jax.tree.map(lambda a: a[n_chunks * k:], xs)
        carry, ys_tail = jax.lax.scan(f, carry, tail, length=rest, unroll=unroll)
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return carry, ys


def _scan_stateful(layer, xs, state, keys, *, unroll, remat, record):
    """Run one stateful layer over all time steps."""

    def step(s, inp):
        x, k = inp
        y, s = layer(x, s, key=k)
        return s, ((y, s) if record else y)

    length = xs.shape[0]
    state, ys = _scan(step, state, (xs, keys), length=length, unroll=unroll, remat=remat)
    if record:
        ys, states = ys
        return ys, state, LayerRecord(ys, states)
    return ys, state, None


def _is_plain_linear(layer) -> bool:
    return (
        type(layer) is eqx.nn.Linear
        and isinstance(layer.in_features, int)
        and isinstance(layer.out_features, int)
    )


def _linear_all_steps(layer, h):
    """`eqx.nn.Linear` on every time step as one `h @ W.T + b`.

    Same numbers as `vmap(layer)`, but `vmap(weight @ x)` (and a user's further `vmap` over
    the batch) puts the feature axis first in the matmul's output and XLA then transposes
    `(out, B*T)` back to `(B, T, out)` (and the input to `(in, B*T)`): two full copies per
    layer that made a training step ~1.4x slower than hand-written JAX on CPU.
    """
    y = h @ layer.weight.T
    if layer.bias is not None:
        y = y + layer.bias.reshape((1,) * (y.ndim - 1) + layer.bias.shape)
    return y


def _layer_major(seq: Sequential, xs, states, keys, *, unroll, remat, record):
    n = len(seq.layers)
    if keys is not None:
        layer_keys = jax.vmap(lambda k: jax.random.split(k, n))(keys)
    new_states, records = [], []
    h = xs
    for i, (layer, s) in enumerate(zip(seq.layers, states)):
        k_i = None if keys is None else layer_keys[:, i]
        if isinstance(h, SpikeEvents):
            if _is_plain_linear(layer) or isinstance(layer, SparseLinear):
                # Event-driven projection: gather the weight columns of the active inputs.
                h = project(h, layer.weight, layer.bias)
                new_states.append(s)
                records.append(LayerRecord(h, None) if record else None)
                continue
            if not isinstance(layer, Sequential):
                h = h.to_dense()
        if isinstance(layer, Sequential):
            h, s, sub = _layer_major(layer, h, s, k_i, unroll=unroll, remat=remat, record=record)
            rec = None if sub is None else LayerRecord(h, tuple(r.state for r in sub))
        elif is_stateful(layer):
            h, s, rec = _scan_stateful(layer, h, s, k_i, unroll=unroll, remat=remat,
                                       record=record)
        else:
            # A stateless layer sees every time step at once: one large matmul/conv.
            if _is_plain_linear(layer):
                h = _linear_all_steps(layer, h)
            elif isinstance(layer, SparseLinear):
                h = _linear_all_steps(layer, h)
            elif (pool := tiled_pool(layer)) is not None and h.ndim == layer.num_spatial_dims + 2:
                h = pool(h)  # (T, channels, *spatial); other ranks get equinox's own error
            elif k_i is None:
                h = jax.vmap(lambda x, lyr=layer: call_stateless(lyr, x, None))(h)
            else:
                h = jax.vmap(lambda x, k, lyr=layer: call_stateless(lyr, x, k))(h, k_i)
            rec = LayerRecord(h, None) if record else None
        new_states.append(s)
        records.append(rec)
    return h, tuple(new_states), (tuple(records) if record else None)


def _chunk_length(remat, length) -> int:
    """The time-chunk length for layer-major remat, or 0 for no chunking.

    An int `k > 1` is taken as given; `True` picks `ceil(sqrt(T))`, the chunk length that
    minimises stored chunk-boundary states plus one recomputed chunk (~2 sqrt(T) steps).
    """
    if remat is True:
        return math.ceil(math.sqrt(length)) if length >= 4 else 0
    if isinstance(remat, bool) or not isinstance(remat, (int, np.integer)) or remat <= 1:
        return 0
    return int(remat) if int(remat) < length else 0


def _layer_major_chunked(seq, xs, states, keys, *, unroll, chunk, record):
    """Layer-major execution over time chunks of `chunk` steps, each chunk checkpointed.

    Only the layer states at chunk boundaries are kept for the backward pass; a chunk's
    activations (every layer's currents and spikes) are recomputed from them. Per-step remat
    inside layer-major execution cannot do this: the currents between layers, `(T, ...)`
    arrays, would still be stored. Each chunk still runs its stateless layers as one matmul
    over `chunk` steps, so the speed stays close to plain layer-major execution.
    """

    def run_chunk(s, x_c, k_c):
        h, s, recs = _layer_major(seq, x_c, s, k_c, unroll=unroll, remat=False, record=record)
        return s, (h, recs)

    def body(s, i):
        # Slice the chunk out of the closed-over inputs: scanning over a reshaped
        # `(n_chunks, chunk, ...)` copy would, under the user's `vmap`, also transpose (copy)
        # the whole input, which at long T is the largest array of all.
        start = i * chunk
        x_c, k_c = jax.tree.map(
            lambda a: jax.lax.dynamic_slice_in_dim(a, start, chunk), (xs, keys)
        )
        return run_chunk(s, x_c, k_c)

    length = xs.shape[0]
    n_chunks, rest = divmod(length, chunk)
    states, out = jax.lax.scan(
        jax.checkpoint(body, prevent_cse=False), states, jnp.arange(n_chunks)
    )
    ys, recs = jax.tree.map(lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:]), out)
    if rest:
        tail_x, tail_k = jax.tree.map(lambda a: a[n_chunks * chunk:], (xs, keys))
        states, (ys_t, recs_t) = run_chunk(states, tail_x, tail_k)
        ys, recs = jax.tree.map(
            lambda a, b: jnp.concatenate([a, b]), (ys, recs), (ys_t, recs_t)
        )
    return ys, states, recs


def _step_major(model, xs, state, keys, *, unroll, remat, record):
    seq = isinstance(model, Sequential)

    def step(s, inp):
        x, k = inp
        if seq:
            y, s, recs = model._step(x, s, k, record=record)
            return s, ((y, recs) if record else y)
        y, s = model(x, s, key=k)
        return s, ((y, s) if record else y)

    state, ys = _scan(step, state, (xs, keys), length=xs.shape[0], unroll=unroll, remat=remat)
    if not record:
        return ys, state, None
    ys, recs = ys
    if seq:
        layer_recs = tuple(
            LayerRecord(out, s if is_stateful(layer) else None)
            for layer, (out, s) in zip(model.layers, recs)
        )
        return ys, state, layer_recs
    return ys, state, (LayerRecord(ys, recs),)


def _check_state(model, state, step_shape, dtype):
    try:
        expected = jax.eval_shape(lambda: model.init_state(step_shape))
    except ValueError:
        raise
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


def run(
    model,
    xs: ArrayLike | SpikeEvents,
    state: PyTree[Array] | None = None,
    *,
    key: PRNGKeyArray | None = None,
    mode: Mode = "auto",
    unroll: int | bool | None = None,
    remat: bool | int = False,
    record: bool = False,
):
    """Run a model over a whole input sequence (one sample; batch with `jax.vmap`).

    Two execution orders give the same numbers:

    - **layer-major** (`mode="layer"`, the default for `snnx.Sequential`): each stateless layer
        is applied to all time steps at once (one large matmul or convolution) and only the
        neuron dynamics are scanned, layer after layer. This is the fast way to train
        feed-forward stacks.
    - **step-major** (`mode="step"`, used for any other model): one time step goes through the
        whole model before the next, as in streaming inference or graphs with feedback.

    ```python
    outs, state = snnx.run(model, xs)                          # xs: (T, *input_shape)
    outs, state = jax.vmap(lambda x: snnx.run(model, x))(xb)   # xb: (B, T, *input_shape)
    ```

    **Arguments:**

    - `model`: an `snnx.Sequential`, a neuron, or any stateful layer with
        `init_state(shape)` and `__call__(x, state, *, key=None) -> (y, state)`.
    - `xs`: inputs with time first, shape `(T, *input_shape)`. Boolean or integer spike
        arrays are converted to float32. An `snnx.SpikeEvents` of one sample (event table
        `(T, max_events)`) selects the event-driven input projection in layer-major mode: a
        first `eqx.nn.Linear` or `snnx.SparseLinear` sums the weight columns of the active
        inputs instead of multiplying the whole raster (same numbers up to float summation
        order, same gradients; ~4x less work for the projection at 3% density). Other layers,
        and step-major mode, see the dense spikes.
    - `state`: initial state for one sample; default `model.init_state(xs.shape[1:])`.
    - `key`: optional PRNG key (dropout, stochastic spiking). Step `t` of layer `i` gets
        `split(fold_in(key, t), n_layers)[i]` in both modes.
    - `mode`: `"auto"` (default), `"layer"` or `"step"`.
    - `unroll`: time steps per scan iteration; `None` picks `snnx.default_unroll()`.
    - `remat`: rematerialisation for long sequences: `True` checkpoints every step, an int `k`
        stores the state every `k` steps and recomputes in between. Saves memory in the
        backward pass at the cost of recomputation. In layer-major mode an int `k` runs the
        whole stack over chunks of `k` steps and keeps only the states between chunks (the
        big saving: the `(T, ...)` currents between layers are not stored), and `True` picks
        `k = ceil(sqrt(T))`. At T=2000 on an SHD-shaped network this needs 0.44x the memory
        at no extra time (bench/).
    - `record`: if True, also return every layer's outputs and states over time.

    **Returns:**

    `(outputs, final_state)`, where `outputs` has shape `(T, *output_shape)`; with
    `record=True`, `(outputs, final_state, records)`, where `records` is a tuple with one
    `snnx.LayerRecord(output, state)` per layer (one entry for a non-`Sequential` model).

    **Raises:**

    `ValueError` for a wrong input rank or shape (naming the layer), a state that does not
    match the model, or an unknown `mode`.
    """
    if not is_stateful(model):
        raise TypeError(
            f"`model` must be stateful (have `init_state`): an `snnx.Sequential`, a neuron, or a "
            f"layer like them; got {type(model).__name__}. Wrap stateless layers and neurons in "
            f"`snnx.Sequential([...])`."
        )
    if mode not in ("auto", "layer", "step"):
        raise ValueError(f"`mode` must be 'auto', 'layer' or 'step', got {mode!r}.")
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
    if state is None:
        state = model.init_state(step_shape)
    else:
        _check_state(model, state, step_shape, None)
    if unroll is None:
        unroll = default_unroll()
    if isinstance(remat, (int, np.integer)) and not isinstance(remat, bool) and remat < 0:
        raise ValueError(f"`remat` must be a bool or a non-negative int, got {remat}.")

    T = xs.shape[0]
    keys = None
    if key is not None:
        keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(T))

    if mode == "auto":
        mode = "layer" if isinstance(model, Sequential) else "step"
    if events and not (mode == "layer" and isinstance(model, Sequential)):
        xs = xs.to_dense()  # the event path is the layer-major projection of all steps at once
    if mode == "layer" and isinstance(model, Sequential) and _chunk_length(remat, T):
        ys, state, recs = _layer_major_chunked(
            model, xs, state, keys, unroll=unroll, chunk=_chunk_length(remat, T), record=record
        )
    elif mode == "layer" and isinstance(model, Sequential):
        ys, state, recs = _layer_major(
            model, xs, state, keys, unroll=unroll, remat=remat, record=record
        )
    else:
        ys, state, recs = _step_major(
            model, xs, state, keys, unroll=unroll, remat=remat, record=record
        )
    if record:
        return ys, state, recs
    return ys, state
