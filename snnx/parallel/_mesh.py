"""Meshes and placement: where the dataset, the parameters and each batch live.

Everything here builds global `jax.Array`s with `jax.make_array_from_callback`, which works
the same in one process and under `jax.distributed.initialize` (every process holds the
same host copy of the dataset and fills the shards its own devices own).
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = "data"
STAGE = "stage"


def as_mesh(mesh, *, axis: str, name: str = "mesh") -> Mesh:
    """`mesh` as a `jax.sharding.Mesh` that has the axis `axis`.

    **Arguments:**

    - `mesh`: a `Mesh`, or a sequence of devices (a one-axis mesh named `axis` is built).
    - `axis`: the axis the caller needs (`"data"` or `"stage"`).
    - `name`: the argument's name, for errors.

    **Raises:**

    `TypeError` for something that is neither; `ValueError` for a mesh without `axis`.
    """
    if isinstance(mesh, Mesh):
        if axis not in mesh.axis_names:
            raise ValueError(
                f"`{name}` has axes {tuple(mesh.axis_names)} but no {axis!r} axis; build it "
                f"with `jax.make_mesh((n,), ({axis!r},))` or name one of its axes {axis!r}."
            )
        # `jax.make_mesh` gives Explicit axes (shardings in the types), which would ask every
        # gather of the unchanged training code for an output sharding; the same devices
        # with Auto axes let the SPMD partitioner propagate the batch sharding instead.
        return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)
    if isinstance(mesh, Sequence) and not isinstance(mesh, str) and len(mesh) > 0 and all(
        isinstance(d, jax.Device) for d in mesh
    ):
        return Mesh(np.asarray(list(mesh), dtype=object), (axis,), axis_types=(AxisType.Auto,))
    raise TypeError(
        f"`{name}` must be a `jax.sharding.Mesh` or a non-empty list of devices (e.g. "
        f"`jax.devices()`), got {type(mesh).__name__}."
    )


def _put(a, sharding):
    if isinstance(a, jax.Array) and a.sharding == sharding:
        return a
    if isinstance(a, jax.Array) and (not a.is_fully_addressable or jax.process_count() == 1):
        return jax.device_put(a, sharding)  # device to device, no host round trip
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(a)
        return jax.random.wrap_key_data(_put(jax.random.key_data(a), sharding), impl=impl)
    # Several processes: each fills the shards of its own devices from its host copy.
    host = np.asarray(a)
    return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])


def replicate(tree, mesh: Mesh):
    """Every array leaf of `tree` replicated on every device of `mesh`."""
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: _put(a, sharding) if eqx.is_array(a) else a, tree)


def shard_leading(tree, mesh: Mesh, axis: str, dim: int = 0):
    """Every array leaf of `tree` split along dimension `dim` over the mesh axis `axis`."""
    def put(a):
        if not eqx.is_array(a):
            return a
        spec = P(*([None] * dim + [axis]))
        return _put(a, NamedSharding(mesh, spec))

    return jax.tree.map(put, tree)


def pad_rows(tree, size: int, dim: int = 0):
    """Every array leaf of `tree` grown along `dim` to `size` by repeating its first rows
    (padding that is masked with weight 0 afterwards)."""
    def pad(a):
        if not eqx.is_array(a):
            return a
        n = a.shape[dim]
        if n == size:
            return a
        reps = -(-size // n)
        full = jnp.concatenate([a] * reps, axis=dim)
        return jax.lax.slice_in_dim(full, 0, size, axis=dim)

    return jax.tree.map(pad, tree)


def round_up(b: int, k: int) -> int:
    return -(-int(b) // k) * k
