"""Pipelining the layers of a `Sequential` over the `"stage"` axis of a device mesh.

A `Sequential` is cut into `S` consecutive stages; stage `s` lives on position `s` of the
mesh axis `"stage"`. A batch is cut into `M` microbatches that flow through a GPipe
schedule written with `jax.shard_map` and `jax.lax.ppermute`: at tick `t` (of `M + S - 1`)
stage `s` runs microbatch `t - s` with `snnx.run` (layer-major: one matmul per `Linear`
over all time steps of the microbatch) and passes its output spikes to stage `s + 1`. The
backward pass is JAX's transpose of the same program (the reverse `ppermute`), so the
gradients are exactly those of the unpipelined model. Each device idles for `S - 1` of the
`M + S - 1` ticks: the bubble fraction `(S - 1) / (M + S - 1)`.

With a `"data"` axis on the same mesh every microbatch is also split over it (data x stage).
Parameters are replicated on the mesh (each device computes only with its own stage's;
the other stages' gradients are zero there and the transpose of the replication sums them).
"""

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from .._checks import is_int
from ..engine import run
from ..layers._util import is_stateful
from ..layers.sequential import Sequential
from ._mesh import DATA, STAGE, as_mesh


def stage_cuts(model, stages) -> tuple[int, ...]:
    """The layer indices where the stages of `model` begin (the first is 0).

    **Arguments:**

    - `model`: an `snnx.Sequential`.
    - `stages`: the number of stages (cuts after stateful layers, as evenly as their count
        allows), or the explicit start indices of stages 1..S-1 (increasing, in
        `(0, len(model.layers))`).

    **Returns:**

    `(0, c_1, ..., c_{S-1})`.

    **Raises:**

    `TypeError` for a model that is not a `Sequential`; `ValueError` for more stages than
    stateful layers, or bad cut indices.
    """
    if not isinstance(model, Sequential):
        raise TypeError(
            f"`model` must be an `snnx.Sequential` to be split into pipeline stages, got "
            f"{type(model).__name__}."
        )
    n = len(model.layers)
    if is_int(stages):
        S = int(stages)
        ends = [i + 1 for i, lay in enumerate(model.layers) if is_stateful(lay)]
        if S < 1 or S > len(ends):
            raise ValueError(
                f"`stages={S}` must lie in [1, {len(ends)}]: the model has {len(ends)} "
                f"stateful layers and every stage ends with one."
            )
        K = len(ends)
        cuts = [ends[round(j * K / S) - 1] for j in range(1, S)]
        return (0, *cuts)
    if isinstance(stages, Sequence) and all(is_int(c) for c in stages):
        cuts = [int(c) for c in stages]
        if any(b <= a for a, b in zip([0, *cuts], [*cuts, n])):
            raise ValueError(
                f"`stages` cut indices must increase strictly inside (0, {n}), got {stages!r}."
            )
        return (0, *cuts)
    raise TypeError(f"`stages` must be an int or a sequence of layer indices, got {stages!r}.")


def split_stages(model, stages) -> tuple[Sequential, ...]:
    """`model` cut into consecutive `snnx.Sequential` stages (see `stage_cuts`).

    **Arguments:** as for `stage_cuts`.

    **Returns:** a tuple of `Sequential`s whose composition is `model`.
    """
    cuts = stage_cuts(model, stages)
    ends = (*cuts[1:], len(model.layers))
    return tuple(model[a:b] for a, b in zip(cuts, ends))


def check_pipeline(mesh, n_stages: int, batch: int, microbatches) -> tuple:
    """The mesh (Auto axes) and the per-device microbatch size, or a named error."""
    mesh = as_mesh(mesh, axis=STAGE)
    if int(mesh.shape[STAGE]) != n_stages:
        raise ValueError(
            f"the model is split into {n_stages} stages but the `mesh` axis 'stage' has "
            f"{mesh.shape[STAGE]} devices; give `stages={mesh.shape[STAGE]}` or a mesh with "
            f"{n_stages} devices on 'stage'."
        )
    if not is_int(microbatches) or microbatches < 1:
        raise ValueError(f"`microbatches` must be a positive int, got {microbatches!r}.")
    d = int(mesh.shape[DATA]) if DATA in mesh.axis_names else 1
    if batch % (microbatches * d):
        raise ValueError(
            f"a batch of {batch} samples does not split into `microbatches={microbatches}` "
            f"of a size that divides the {d} devices of the 'data' axis; use a batch size "
            f"that is a multiple of {microbatches * d}."
        )
    return mesh, batch // microbatches


def _flat_out_shapes(stage_models, in_shape, T):
    shapes, dtypes = [], []
    shape = in_shape
    for st in stage_models:
        out = jax.eval_shape(lambda m, s=shape: run(m, jnp.zeros((T, *s), jnp.float32))[0], st)
        shape = tuple(out.shape[1:])
        shapes.append(shape)
        dtypes.append(out.dtype)
    return shapes, jnp.result_type(*dtypes)


def pipeline_run(model, xb, *, mesh, stages=None, microbatches: int = 4):
    """The outputs of `model` on a batch, computed by a GPipe pipeline over the mesh.

    Equals `jax.vmap(lambda x: snnx.run(model, x)[0])(xb)` (and so do its gradients): the
    same layer-major `snnx.run` per stage, only placed on other devices.

    ```python
    mesh = jax.make_mesh((2,), ("stage",))
    outs = snnx.parallel.pipeline_run(model, xb, mesh=mesh, microbatches=4)
    ```

    **Arguments:**

    - `model`: an `snnx.Sequential` with at least as many stateful layers as stages.
    - `xb`: a dense batch `(B, T, *input_shape)`; `B` must be a multiple of
        `microbatches` times the size of the mesh's `"data"` axis (if any).
    - `mesh`: a `jax.sharding.Mesh` with a `"stage"` axis (and optionally `"data"`), or a
        list of devices (one device per stage).
    - `stages`: as for `split_stages`; default the size of the `"stage"` axis.
    - `microbatches`: `M`, the microbatches per batch (bubble `(S-1)/(M+S-1)`).

    **Returns:** the outputs `(B, T, *output_shape)`.

    **Raises:** `ValueError`/`TypeError` naming `mesh`, `stages`, `microbatches` or `model`.
    """
    mesh = as_mesh(mesh, axis=STAGE)
    stages = int(mesh.shape[STAGE]) if stages is None else stages
    stage_models = split_stages(model, stages)
    xb = jnp.asarray(xb)
    if xb.ndim < 3:
        raise ValueError(f"`xb` must be a batch of shape (batch, time, *input_shape), got "
                         f"{xb.shape}.")
    mesh, mb = check_pipeline(mesh, len(stage_models), xb.shape[0], microbatches)
    return _pipelined(stage_models, xb, mesh, int(microbatches))


def _pipelined(stage_models, xb, mesh, M):
    """The GPipe forward (traceable; no checks)."""
    S = len(stage_models)
    B, T = xb.shape[:2]
    in_shape = tuple(xb.shape[2:])
    out_shapes, dtype = _flat_out_shapes(stage_models, in_shape, T)
    sizes = [math.prod(s) for s in out_shapes]
    D = max(sizes)
    has_data = DATA in mesh.axis_names
    xm = xb.astype(jnp.float32).reshape(M, B // M, T, *in_shape)

    def branch(j):
        def f(models, x_in, buf):
            if j == 0:
                h = x_in
            else:
                h = buf[..., : sizes[j - 1]].reshape(*buf.shape[:2], *out_shapes[j - 1])
            y = jax.vmap(lambda h1: run(models[j], h1)[0])(h)
            y = y.reshape(*y.shape[:2], -1).astype(dtype)
            return jnp.pad(y, ((0, 0), (0, 0), (0, D - sizes[j])))
        return f

    branches = [branch(j) for j in range(S)]
    perm = [(i, i + 1) for i in range(S - 1)]

    params, static = eqx.partition(stage_models, eqx.is_array)

    def body(params, xm_local):
        models = eqx.combine(params, static)
        s = jax.lax.axis_index(STAGE)
        mb = xm_local.shape[1]
        buf = jnp.zeros((mb, T, D), dtype)
        outs = jnp.zeros((M, mb, T, D), dtype)

        def tick(carry, t):
            buf, outs = carry
            x_in = xm_local[jnp.clip(t, 0, M - 1)]
            y = jax.lax.switch(s, branches, models, x_in, buf)
            m = t - (S - 1)
            written = jax.lax.dynamic_update_index_in_dim(outs, y, jnp.clip(m, 0, M - 1), 0)
            outs = jnp.where((s == S - 1) & (m >= 0), written, outs)
            if S > 1:
                buf = jax.lax.ppermute(y, STAGE, perm)
            return (buf, outs), None

        (_, outs), _ = jax.lax.scan(tick, (buf, outs), jnp.arange(M + S - 1))
        return outs[None]

    x_spec = P(None, DATA) if has_data else P()
    o_spec = P(STAGE, None, DATA) if has_data else P(STAGE)
    outs = jax.shard_map(body, mesh=mesh, in_specs=(P(), x_spec), out_specs=o_spec,
                         check_vma=False)(params, xm)
    last = outs[S - 1][..., : sizes[-1]]
    return last.reshape(B, T, *out_shapes[-1])
