"""Scale out on JAX's own engine: data parallelism and pipelined layers on device meshes.

- Data parallel: `snnx.fit(..., mesh=...)`, `snnx.evaluate(..., mesh=...)` and
  `snnx.make_step(..., mesh=...)` split every batch over the `"data"` axis of a
  `jax.sharding.Mesh` (`DataParallel`); XLA's SPMD partitioner does the rest.
- Pipeline: `pipeline_run` and `make_pipeline_step` cut an `snnx.Sequential` into stages on
  the `"stage"` axis and stream microbatches through them (`jax.shard_map` +
  `jax.lax.ppermute`), with a `GPipe` (exact) or `DelayedGradients` (SpikePipe-style)
  schedule. A mesh with both axes combines the two.
- Several hosts: call `jax.distributed.initialize(...)` first, build the mesh from
  `jax.devices()` (all processes' devices) and pass the same host data in every process.
"""

from ._mesh import as_mesh as as_mesh
from ._pipeline import (
    pipeline_run as pipeline_run,
    split_stages as split_stages,
    stage_cuts as stage_cuts,
)
from ._pipeline_step import (
    AbstractSchedule as AbstractSchedule,
    DelayedGradients as DelayedGradients,
    GPipe as GPipe,
    PipelineState as PipelineState,
    PipelineStep as PipelineStep,
    make_pipeline_step as make_pipeline_step,
)
from ._placement import (
    AbstractPlacement as AbstractPlacement,
    DataParallel as DataParallel,
    SingleDevice as SingleDevice,
)

__all__ = ["AbstractPlacement", "DataParallel", "SingleDevice", "as_mesh", "pipeline_run",
           "split_stages", "stage_cuts", "AbstractSchedule", "GPipe", "DelayedGradients",
           "PipelineState", "PipelineStep", "make_pipeline_step"]
