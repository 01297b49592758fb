"""The pipelined training step and its schedules (GPipe, SpikePipe-style delayed gradients)."""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import PyTree

from .._checks import is_int
from ..engine import compiler_options
from ..neurons import trainable_spec
from ._mesh import STAGE, as_mesh, replicate
from ._pipeline import _pipelined, check_pipeline, split_stages, stage_cuts


class AbstractSchedule(eqx.Module):
    """How a pipelined step turns a batch into a parameter update.

    **Fields:** `microbatches`: the number `M` of microbatches a batch is cut into.
    """

    microbatches: eqx.AbstractVar[int]

    @abc.abstractmethod
    def delays(self, n_stages: int) -> tuple[int, ...]:
        """The gradient delay (in optimiser steps) of every stage."""

    def __check_init__(self):
        if not is_int(self.microbatches) or self.microbatches < 1:
            raise ValueError(
                f"`microbatches` must be a positive int, got {self.microbatches!r}."
            )


class GPipe(AbstractSchedule):
    """GPipe (Huang et al. 2019): all microbatches forward, then all backward, then one
    synchronous update. Exact gradients: the same update as the unpipelined step.
    Bubble fraction `(S - 1) / (M + S - 1)` for `S` stages.

    **Arguments:** `microbatches`: `M`. Default 4.
    """

    microbatches: int = 4

    def delays(self, n_stages: int) -> tuple[int, ...]:
        return (0,) * n_stages


class DelayedGradients(AbstractSchedule):
    """SpikePipe-style delayed gradients (Sanjeet, Sahoo & Parhi 2024, arXiv 2406.06879).

    A pipeline that does not flush between batches keeps every stage busy, at the price of
    stale gradients: stage `s` of `S` (0 = input side) receives the error of batch `k` only
    after the `S - 1 - s` stages behind it have processed it, while new batches already went
    forward. Here stage `s`'s gradient at step `k` is computed with its parameters from
    step `k - (S - 1 - s)` (the last stage has no delay, the first the most) and applied
    to the current parameters. The first steps use the initial parameters where no older
    version exists.

    This reproduces the numerics of that schedule (so its accuracy cost can be measured);
    the step itself still runs the flushed GPipe program, so it is not faster here.

    **Arguments:** `microbatches`: `M`. Default 4.
    """

    microbatches: int = 4

    def delays(self, n_stages: int) -> tuple[int, ...]:
        return tuple(n_stages - 1 - s for s in range(n_stages))


class PipelineState(eqx.Module):
    """The optimiser state of a pipelined step and, for delayed gradients, the parameter
    versions of the last `max(delay)` steps (newest first)."""

    opt_state: PyTree
    history: tuple


class PipelineStep(eqx.Module):
    """A compiled pipelined training step; build it with `make_pipeline_step`.

    `state = step.init(model)`, then `model, state, info = step(model, state, xb, yb)`.
    """

    loss: Callable = eqx.field(static=True)
    optimizer: optax.GradientTransformation = eqx.field(static=True)
    mesh: object = eqx.field(static=True)
    stages: object = eqx.field(static=True)
    schedule: AbstractSchedule

    def _n_stages(self, model) -> int:
        return len(split_stages(model, self.stages))

    def init(self, model) -> PipelineState:
        """The initial `PipelineState` for `model`.

        **Arguments:** `model`: the `snnx.Sequential` to train.

        **Returns:** a `PipelineState`.
        """
        params = eqx.filter(model, trainable_spec(model))
        d = max(self.schedule.delays(self._n_stages(model)))
        state = PipelineState(self.optimizer.init(params), (params,) * d)
        return replicate(state, self.mesh)

    def __call__(self, model, state: PipelineState, xb, yb):
        """One update on the batch `(xb, yb)`.

        **Arguments:**

        - `model`: the `snnx.Sequential`.
        - `state`: from `init` (or the previous call).
        - `xb`: dense inputs `(B, T, *input_shape)`, `B` a multiple of `microbatches`
            (times the `"data"` axis size).
        - `yb`: labels `(B,)`.

        **Returns:** `(model, state, info)` with `info["loss"]`.
        """
        if not isinstance(state, PipelineState):
            raise TypeError(f"`state` must come from `step.init(model)`, got "
                            f"{type(state).__name__}.")
        xb = jnp.asarray(xb)
        yb = jnp.asarray(yb)
        if xb.ndim < 3 or yb.shape[:1] != xb.shape[:1]:
            raise ValueError(f"`xb` must be (batch, time, ...) with one label in `yb` per "
                             f"sample, got {xb.shape} and {yb.shape}.")
        if not jnp.issubdtype(xb.dtype, jnp.floating):
            xb = xb.astype(jnp.float32)
        n = self._n_stages(model)
        check_pipeline(self.mesh, n, xb.shape[0], self.schedule.microbatches)
        model, state, xb, yb = replicate((model, state, xb, yb), self.mesh)
        return _pipeline_update(self, model, state, xb, yb)


@eqx.filter_jit(compiler_options=compiler_options())
def _pipeline_update(step: PipelineStep, model, state: PipelineState, xb, yb):
    spec = trainable_spec(model)
    params, static = eqx.partition(model, spec)
    cuts = stage_cuts(model, step.stages)
    delays = step.schedule.delays(len(cuts))
    versions = (params, *state.history)
    # Stage s evaluated with the parameters of `delays[s]` steps ago (layer tuples, not
    # `Sequential`s: filtered parameters hold None for plain-function layers).
    owner = [sum(i >= c for c in cuts) - 1 for i in range(len(params.layers))]
    stale_layers = tuple(versions[delays[owner[i]]].layers[i] for i in range(len(owner)))
    stale = eqx.tree_at(lambda m: m.layers, params, stale_layers)

    def objective(p):
        m = eqx.combine(p, static)
        outs = _pipelined(split_stages(m, step.stages), xb, step.mesh,
                          step.schedule.microbatches)
        return step.loss(outs, yb)

    loss, grads = jax.value_and_grad(objective)(stale)
    updates, opt_state = step.optimizer.update(grads, state.opt_state, params)
    new_params = optax.apply_updates(params, updates)
    history = (params, *state.history)[: len(state.history)]
    return (eqx.combine(new_params, static), PipelineState(opt_state, history),
            {"loss": loss})


def make_pipeline_step(
    loss: Callable,
    optimizer: optax.GradientTransformation,
    *,
    mesh,
    stages=None,
    schedule: AbstractSchedule | None = None,
) -> PipelineStep:
    """A training step whose forward and backward pass are pipelined over mesh devices.

    ```python
    mesh = jax.make_mesh((2,), ("stage",))               # or (("data", "stage")) 2-D
    step = snnx.parallel.make_pipeline_step(snnx.losses.ce_max_membrane, optax.adam(1e-3),
                                            mesh=mesh, schedule=snnx.parallel.GPipe(4))
    state = step.init(model)
    model, state, info = step(model, state, xb, yb)
    ```

    **Arguments:**

    - `loss`: `loss(outputs, labels) -> scalar` (see `snnx.losses`).
    - `optimizer`: an optax `GradientTransformation`.
    - `mesh`: a `jax.sharding.Mesh` with a `"stage"` axis (and optionally `"data"`), or a
        list of devices (one per stage).
    - `stages`: as for `split_stages`; default the size of the `"stage"` axis.
    - `schedule`: `GPipe(microbatches)` (default `GPipe(4)`: exact gradients) or
        `DelayedGradients(microbatches)` (SpikePipe-style stale gradients).

    **Returns:** a `PipelineStep`.

    **Raises:** `TypeError`/`ValueError` naming `loss`, `optimizer`, `mesh` or `schedule`.
    """
    if not callable(loss):
        raise TypeError(f"`loss` must be a function (outputs, labels) -> scalar, got {loss!r}.")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError("`optimizer` must be an optax GradientTransformation, e.g. "
                        "`optax.adam(1e-3)`.")
    schedule = GPipe() if schedule is None else schedule
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"`schedule` must be `snnx.parallel.GPipe(...)` or "
                        f"`snnx.parallel.DelayedGradients(...)`, got {schedule!r}.")
    mesh = as_mesh(mesh, axis=STAGE)
    stages = int(mesh.shape[STAGE]) if stages is None else stages
    return PipelineStep(loss, optimizer, mesh, stages, schedule)
