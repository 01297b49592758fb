"""`snnx.engine.run_batch`: `snnx.run` over a batch, in the layout that is fast inside.

`snnx.run` acts on one sample; a batch is `jax.vmap` of it. Where the batch axis sits in
the input decides the layout of every array inside the run: `lax.scan`'s batching rule
keeps time first and puts the batch second, so a time-major input `(T, B, ...)` needs no
copy anywhere, while a batch-major `(B, T, ...)` one makes XLA transpose each layer's
current `(B, T, n)` to `(T, B, n)` for the time scan (and back in the backward pass).
Transposing the input itself is no cure: on the SHD-shaped bench network at T=250, batch
32, copying a batch-major `(B, T, 700)` input to time-major made the training step 1.29x
the hand-written one, against 1.02x for leaving it batch-major, and 1.00x for data that
were time-major from the start (bench/results/timemajor_ab, workload (e)). So this helper
never copies the input: it maps over the batch axis where the input has it, and the layout
is best chosen where the batch is made (staging data time-major). `snnx.fit`, `evaluate`
and `make_step` batch through it, batch-major as their data come.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from .._checks import check_key, is_int
from ..events import SpikeEvents
from ._run import run


def _check_batch_axis(batch_axis, xs) -> int:
    if not is_int(batch_axis) or batch_axis not in (0, 1):
        raise ValueError(
            f"`batch_axis` must be 0 (batch-major input `(B, T, ...)`) or 1 (time-major "
            f"`(T, B, ...)`), got {batch_axis!r}."
        )
    batch_axis = int(batch_axis)
    if isinstance(xs, SpikeEvents) and batch_axis != 0:
        raise ValueError(
            "`batch_axis` must be 0 for an `snnx.SpikeEvents` batch (its event tables are "
            "batch-major `(B, T, max_events)`)."
        )
    return batch_axis


def run_batch(
    model,
    xs: ArrayLike | SpikeEvents,
    state: PyTree[Array] | None = None,
    *,
    batch_axis: int = 0,
    key: PRNGKeyArray | None = None,
    record: bool = False,
    **run_kwargs,
):
    """Run a model over a batch of sequences: `snnx.run` mapped over the batch axis.

    ```python
    outs, state = snnx.engine.run_batch(model, xb)                   # xb: (B, T, ...)
    outs, state = snnx.engine.run_batch(model, xt, batch_axis=1)     # xt: (T, B, ...)
    ```

    The same numbers as `jax.vmap(lambda x: snnx.run(model, x))(xb)`. With time-major data
    (`batch_axis=1`) no array inside the run is transposed, which is the fastest layout on
    CPU for long sequences; a batch-major input is not copied to time-major (the copy costs
    more than it saves), so stage data time-major where they are made if you can.

    **Arguments:**

    - `model`: as for `snnx.run`.
    - `xs`: the batch, `(B, T, *input_shape)` with `batch_axis=0` (default, also an
        `snnx.SpikeEvents` batch), or `(T, B, *input_shape)` with `batch_axis=1`.
    - `state`: None (every sample starts from `model.init_state`) or a batched state, batch
        axis first on every leaf.
    - `batch_axis`: 0 or 1, where the batch sits in `xs`; outputs and records come back
        with the batch on the same axis.
    - `key`: optional PRNG key, split into one key per sample (`jax.random.split(key, B)`).
    - `record`: as for `snnx.run`.
    - `**run_kwargs`: any other `snnx.run` option (`mode`, `unroll`, `remat`).

    **Returns:**

    `(outputs, final_state)` or with `record=True` `(outputs, final_state, records)`:
    outputs `(B, T, ...)` (`batch_axis=0`) or `(T, B, ...)` (`batch_axis=1`), records with
    the same layout on every leaf, the final state with the batch first.

    **Raises:**

    `ValueError` for a `batch_axis` other than 0 or 1, an input with fewer than two axes,
    and everything `snnx.run` raises.
    """
    batch_axis = _check_batch_axis(batch_axis, xs)
    if not isinstance(xs, SpikeEvents):
        xs = jnp.asarray(xs)
        if xs.ndim < 2:
            raise ValueError(
                f"`xs` must be a batch with a batch and a time axis, got shape {xs.shape}; "
                f"for one sample call `snnx.run(model, xs)`."
            )
    n = xs.shape[batch_axis]
    keys = None
    if key is not None:
        check_key(key, what="or None for a deterministic model")
        keys = jax.random.split(key, n)

    def one(x, s, k):
        return run(model, x, s, key=k, record=record, **run_kwargs)

    out_axes = (batch_axis, 0, batch_axis) if record else (batch_axis, 0)
    in_axes = (batch_axis, None if state is None else 0, None if keys is None else 0)
    return jax.vmap(one, in_axes=in_axes, out_axes=out_axes)(xs, state, keys)
