"""Bit-packed spike tensors: 8 time steps per byte, kept in device memory."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, UInt8

from ..train._progress import AbstractLoopMeter, as_loop_meter

_PACK_CHUNK = 1024  # samples packed per call (and per progress update)


def pack_spikes(
    spikes: ArrayLike, *, axis: int = 1, progress: bool | AbstractLoopMeter = False
) -> np.ndarray:
    """Pack a binary spike array along its time axis, 8 steps per byte (`np.packbits`).

    **Arguments:**

    - `spikes`: array of 0/1 (bool or numeric), e.g. shape `(N, T, *shape)`.
    - `axis`: the time axis. Default 1 (after the sample axis).
    - `progress`: False (default) shows nothing, True a tqdm bar over the samples (axis 0,
        packed 1024 at a time), or an `snnx.train.AbstractLoopMeter`, as in `snnx.fit`.

    **Returns:**

    A `uint8` NumPy array with `ceil(T / 8)` entries along `axis`.

    **Raises:**

    `ValueError` if `spikes` holds values other than 0 and 1 (counts > 1 cannot be packed:
    clip them or keep the dense array).
    """
    arr = np.asarray(spikes)
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            bad = arr[~np.isin(arr, (0, 1))]
            raise ValueError(
                f"`spikes` must contain only 0 and 1 to be bit-packed, found e.g. {bad.flat[0]!r} "
                f"({bad.size} entries); clip multi-spike bins with `np.minimum(x, 1)` or keep "
                f"the dense array."
            )
        arr = arr.astype(np.bool_)
    meter = as_loop_meter(progress)
    if arr.ndim < 2 or axis % arr.ndim == 0:  # no sample axis apart from time: one call
        return np.packbits(arr, axis=axis)
    n = arr.shape[0]
    out = np.empty(arr.shape[:axis % arr.ndim] + (-(-arr.shape[axis] // 8),)
                   + arr.shape[axis % arr.ndim + 1:], np.uint8)
    meter.loop_start(n, "packing spikes")
    try:
        for s in range(0, n, _PACK_CHUNK):
            out[s:s + _PACK_CHUNK] = np.packbits(arr[s:s + _PACK_CHUNK], axis=axis)
            meter.loop_update(min(_PACK_CHUNK, n - s))
    finally:
        meter.loop_end()
    return out


def unpack_spikes(
    bits: UInt8[ArrayLike, "..."], length: int, *, axis: int = 0, dtype=jnp.float32
) -> Array:
    """Unpack bits from `pack_spikes` (inside `jit` too) to `length` time steps.

    **Arguments:**

    - `bits`: the packed `uint8` array.
    - `length`: the number of time steps `T` (padding bits beyond it are dropped).
    - `axis`: the packed time axis of `bits`. Default 0 (one sample, time first).
    - `dtype`: output dtype. Default float32.

    **Returns:**

    The 0/1 spike array with `length` entries along `axis`.
    """
    bits = jnp.asarray(bits)
    if bits.dtype != jnp.uint8:
        raise TypeError(f"`bits` must be uint8 (from `pack_spikes`), got {bits.dtype}.")
    return jnp.unpackbits(bits, axis=axis, count=length).astype(dtype)


class PackedSpikes(eqx.Module):
    """A dataset of spike trains, bit-packed along time and held on a device.

    **Arguments:**

    - `spikes`: 0/1 array of shape `(N, T, *shape)` (NumPy or JAX).
    - `device`: where to place the packed bits; default JAX's default device.
    - `progress`: False (default), True (a tqdm bar) or an `snnx.train.AbstractLoopMeter`,
        told as the samples are packed (`pack_spikes`).
    """

    bits: UInt8[Array, "n packed_t *shape"]
    length: int = eqx.field(static=True)

    def __init__(self, spikes: ArrayLike | None = None, *, device=None,
                 progress: bool | AbstractLoopMeter = False, _bits=None, _length=None):
        if _bits is not None:
            self.bits = jax.device_put(jnp.asarray(_bits, jnp.uint8), device)
            self.length = int(_length)
            return
        arr = np.asarray(spikes)
        if arr.ndim < 2:
            raise ValueError(
                f"`spikes` must have shape (N, T, *shape) with a sample and a time axis, got "
                f"{arr.shape}."
            )
        self.length = int(arr.shape[1])
        self.bits = jax.device_put(pack_spikes(arr, axis=1, progress=progress), device)

    @classmethod
    def from_bits(cls, bits: ArrayLike, length: int, *, device=None) -> "PackedSpikes":
        """Wrap already-packed bits (e.g. from a cache) of `length` time steps.

        **Arguments:**

        - `bits`: `uint8` array `(N, ceil(length / 8), *shape)` from `pack_spikes(..., axis=1)`.
        - `length`: the number of time steps.
        - `device`: where to place the bits.
        """
        bits = np.asarray(bits)
        if bits.dtype != np.uint8 or bits.ndim < 2 or bits.shape[1] != -(-int(length) // 8):
            raise ValueError(
                f"`bits` must be uint8 of shape (N, ceil(length/8)={-(-int(length) // 8)}, ...), "
                f"got {bits.dtype} {bits.shape}."
            )
        return cls(device=device, _bits=bits, _length=length)

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """The unpacked shape `(N, T, *shape)`."""
        return (self.bits.shape[0], self.length) + tuple(self.bits.shape[2:])

    @property
    def nbytes(self) -> int:
        """Bytes held on the device."""
        return int(self.bits.size)

    def unpack(self, index=None, dtype=jnp.float32) -> Array:
        """Dense spikes of the samples `index` (all if None), shape `(n, T, *shape)`."""
        bits = self.bits if index is None else self.bits[index]
        return unpack_spikes(bits, self.length, axis=bits.ndim - len(self.shape) + 1, dtype=dtype)
