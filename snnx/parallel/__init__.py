"""Scale out on JAX's own engine: data parallelism and pipelined layers on device meshes.

- Data parallel: `snnx.fit(..., mesh=...)`, `snnx.evaluate(..., mesh=...)` and
  `snnx.make_step(..., mesh=...)` split every batch over the `"data"` axis of a
  `jax.sharding.Mesh` (`DataParallel`); XLA's SPMD partitioner does the rest.
"""

from ._mesh import as_mesh as as_mesh
from ._placement import (
    AbstractPlacement as AbstractPlacement,
    DataParallel as DataParallel,
    SingleDevice as SingleDevice,
)

__all__ = ["AbstractPlacement", "DataParallel", "SingleDevice", "as_mesh"]
