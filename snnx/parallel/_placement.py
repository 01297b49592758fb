"""Data parallelism as a placement strategy for `fit`, `evaluate` and `make_step`.

The compiled programs of `snnx.train` are not rewritten: they are the same `jit` functions,
called with committed, sharded inputs, and XLA's SPMD partitioner splits them. The batch
(its indices, weights, gathered inputs and everything computed per sample) is split over
the mesh axis `"data"`; parameters, optimiser state and the pre-staged dataset are
replicated, so a shuffled global batch is gathered locally on every device and the
gradient is one all-reduce. The whole-epoch program (`fit(..., scan_epoch=True)`) stays one
compiled program. Results equal single-device training with the same seed up to float
summation order.

A batch that does not divide the data axis is padded with repeated samples of weight 0
(the loss is then the weighted mean of per-sample losses, as `last_batch="pad"` already
does), so no sample counts twice and none is lost.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jax.sharding import Mesh

from ._mesh import DATA, as_mesh, pad_rows, replicate, round_up, shard_leading


class AbstractPlacement(eqx.Module):
    """Where `fit`/`evaluate`/`make_step` put data and parameters."""

    @abc.abstractmethod
    def batch_size(self, b: int) -> int:
        """The compiled batch size for `b` samples (a multiple of the data axis)."""

    @abc.abstractmethod
    def replicate(self, tree):
        """`tree`'s arrays on every device (parameters, optimiser state, dataset)."""

    @abc.abstractmethod
    def shard(self, tree, dim: int = 0):
        """`tree`'s arrays split along `dim` (the batch dimension) over the devices."""

    def pads(self, b: int) -> bool:
        return self.batch_size(b) != b

    def epoch_batches(self, idx, w):
        """Index batches `(n_batches, B)` and weights padded to the compiled batch size
        (repeated indices, weight 0) and split along the batch."""
        b = idx.shape[1]
        bp = self.batch_size(b)
        if bp != b:
            idx = pad_rows(idx, bp, dim=1)
            w = jnp.concatenate([w, jnp.zeros((w.shape[0], bp - b), w.dtype)], axis=1)
        return self.shard(idx, 1), self.shard(w, 1)

    def user_batch(self, xb, yb, w):
        """A batch given by the caller (`make_step`): padded rows of weight 0, split."""
        b = yb.shape[0]
        bp = self.batch_size(b)
        if w is None and bp != b:
            w = jnp.ones((b,), jnp.float32)
        if bp != b:
            xb, yb = pad_rows(xb, bp), pad_rows(yb, bp)
            w = jnp.concatenate([jnp.asarray(w), jnp.zeros((bp - b,), jnp.asarray(w).dtype)])
        return self.shard(xb), self.shard(yb), (None if w is None else self.shard(w))


class SingleDevice(AbstractPlacement):
    """The default: JAX's default device, nothing moved."""

    def batch_size(self, b: int) -> int:
        return int(b)

    def replicate(self, tree):
        return tree

    def shard(self, tree, dim: int = 0):
        return tree


class DataParallel(AbstractPlacement):
    """Split every batch over the `"data"` axis of `mesh`; replicate the rest.

    **Arguments:**

    - `mesh`: a `jax.sharding.Mesh` with a `"data"` axis (other axes hold replicas), or a
        list of devices (a one-axis `"data"` mesh is built). Under `jax.distributed` the mesh
        spans the devices of all processes; every process passes the same host data.
    """

    mesh: Mesh = eqx.field(static=True)

    def __init__(self, mesh):
        self.mesh = as_mesh(mesh, axis=DATA)

    @property
    def size(self) -> int:
        return int(self.mesh.shape[DATA])

    def batch_size(self, b: int) -> int:
        return round_up(b, self.size)

    def replicate(self, tree):
        return replicate(tree, self.mesh)

    def shard(self, tree, dim: int = 0):
        return shard_leading(tree, self.mesh, DATA, dim)


def placement(mesh) -> AbstractPlacement:
    """`SingleDevice()` for `mesh=None`, an `AbstractPlacement` as given, else
    `DataParallel(mesh)`."""
    if mesh is None:
        return SingleDevice()
    if isinstance(mesh, AbstractPlacement):
        return mesh
    return DataParallel(mesh)
