"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from the official HDF5.

Cramer, Stradmann, Schemmel & Zenke (2020). Each file holds, per sample, the spike times
(`spikes/times`, float seconds) and channels (`spikes/units`, 0..699) of a cochlea model,
plus `labels` and `extra/...` metadata. `load_shd` bins them into `n_steps` time bins, packs
the bins along time (`snnx.data.PackedSpikes`) and caches the result.
"""

import hashlib
import json
import os
import pathlib
import warnings
from typing import NamedTuple

import numpy as np

from ..train._progress import AbstractLoopMeter, as_loop_meter
from .packing import PackedSpikes

N_CHANNELS = 700
N_CLASSES = {"shd": 20, "ssc": 35}
SOURCES = {
    "shd": "https://zenkelab.org/datasets/shd_{split}.h5.gz  (splits: train, test)",
    "ssc": "https://zenkelab.org/datasets/ssc_{split}.h5.gz  (splits: train, valid, test)",
}


class BinningInfo(NamedTuple):
    """What binning did to the events of a file.

    - `n_events`: events read.
    - `n_late`: events at or after `t_max`, left out (counted, never silent).
    - `n_merged`: events that fell into an already-occupied bin and were merged into its
        single spike (bit-packed spikes are binary).
    """

    n_events: int
    n_late: int
    n_merged: int


def _missing(path, dataset):
    return FileNotFoundError(
        f"`path` {str(path)!r} does not exist. Download the {dataset.upper()} file from "
        f"{SOURCES[dataset]}, gunzip it, and pass its path (snnx cannot download here: see "
        f"`snnx.data.download`)."
    )


def _read_h5(path, dataset):
    try:
        import h5py
    except ImportError:
        raise ImportError("SHD/SSC files are HDF5: `pip install 'snnx[data]'` (h5py).") from None
    path = pathlib.Path(path)
    if not path.exists():
        raise _missing(path, dataset)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(
            f"`path` {str(path)!r} is not a readable HDF5 file ({e}); it may be truncated or "
            f"still gzipped: re-download it and `gunzip` it."
        ) from None
    with f:
        for name in ("spikes/times", "spikes/units", "labels"):
            if name not in f:
                raise ValueError(
                    f"`path` {str(path)!r} has no dataset `{name}`: not an SHD/SSC file (expected "
                    f"`spikes/times`, `spikes/units`, `labels`)."
                )
        for name, kinds in (("spikes/units", "iu"), ("labels", "iu")):
            base = h5py.check_vlen_dtype(f[name].dtype) or f[name].dtype
            if base.kind not in kinds:
                raise ValueError(
                    f"`path` {str(path)!r}: `{name}` holds {base} values, not integers: not an "
                    f"SHD/SSC file, or a damaged one."
                )
        try:
            times = [np.asarray(t, np.float64) for t in f["spikes/times"]]
            units = [np.asarray(u, np.int64) for u in f["spikes/units"]]
            labels = np.asarray(f["labels"], np.int64)
        except (OSError, TypeError, ValueError) as e:
            raise ValueError(
                f"`path` {str(path)!r} is corrupt: reading its spikes failed ({e})."
            ) from None
    if not (len(times) == len(units) == len(labels)):
        raise ValueError(
            f"`path` {str(path)!r} is inconsistent: {len(times)} spike-time arrays, "
            f"{len(units)} unit arrays and {len(labels)} labels."
        )
    where = f"`path` {str(path)!r}"
    _check_events(times, units, N_CHANNELS, where)
    n_classes = N_CLASSES[dataset]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        other = [d for d, c in N_CLASSES.items() if d != dataset and labels.max() < c]
        hint = f" (an {other[0].upper()} file? pass `dataset={other[0]!r}`)" if other else ""
        raise ValueError(
            f"{where}: labels must lie in [0, {n_classes}) for `dataset={dataset!r}`, found "
            f"values in [{labels.min()}, {labels.max()}]{hint}; the file is damaged or of "
            f"another dataset."
        )
    return times, units, labels


def _check_events(times, units, n_channels, where):
    """Event lists that binning would otherwise miscount: lengths, channel ids, times.

    NaN, infinite or negative spike times are damage, not lateness: binning would count
    them as events after `t_max`.
    """
    for i, (t, u) in enumerate(zip(times, units)):
        if t.shape != u.shape:
            raise ValueError(f"{where}: sample {i} has {t.size} spike times but {u.size} units.")
        if u.size and (u.min() < 0 or u.max() >= n_channels):
            raise ValueError(
                f"{where}: sample {i} has channel ids outside [0, {n_channels}): min {u.min()}, "
                f"max {u.max()}."
            )
        bad = ~np.isfinite(t) | (t < 0)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{where}: sample {i} has {int(bad.sum())} spike times that are NaN, infinite "
                f"or negative (the first, event {j}, is {t[j]}); spike times must be finite "
                f"seconds >= 0. The file is damaged."
            )


def bin_events(times, units, *, n_steps, t_max, n_channels=N_CHANNELS, channels=N_CHANNELS,
               progress: bool | AbstractLoopMeter = False):
    """Bin event lists into a binary `(N, n_steps, channels)` array.

    **Arguments:**

    - `times`, `units`: per sample, arrays of event times (seconds) and channel ids.
    - `n_steps`: number of time bins covering `[0, t_max)`.
    - `t_max`: cut-off time; later events are counted in `BinningInfo.n_late`.
    - `n_channels`: channels of the source (700 for SHD/SSC).
    - `channels`: output channels; `n_channels` must be a multiple: neighbouring source
        channels are merged (700 -> 350, 140, 100, 70, ...).
    - `progress`: False (default) shows nothing, True a tqdm bar over the samples, or an
        `snnx.train.AbstractLoopMeter` (told once per sample).

    **Returns:**

    `(spikes (N, n_steps, channels) bool, BinningInfo)`.

    **Raises:**

    `ValueError` for bad binning parameters, channel ids outside `[0, n_channels)`, and
    NaN, infinite or negative spike times (damage, which would otherwise count as late).
    """
    if not (isinstance(n_steps, (int, np.integer)) and n_steps > 0):
        raise ValueError(f"`n_steps` must be a positive int, got {n_steps!r}.")
    if not (np.isfinite(t_max) and t_max > 0):
        raise ValueError(f"`t_max` must be a positive time in seconds, got {t_max!r}.")
    ok = isinstance(channels, (int, np.integer)) and channels > 0
    if not (ok and n_channels % channels == 0):
        raise ValueError(
            f"`channels` must divide {n_channels} (neighbouring channels are merged), got "
            f"{channels!r}; e.g. 700, 350, 140, 100, 70."
        )
    group = n_channels // channels
    out = np.zeros((len(times), n_steps, channels), dtype=bool)
    n_events = n_late = n_merged = 0
    times = [np.asarray(t, np.float64) for t in times]
    units = [np.asarray(u) for u in units]
    if len(times) != len(units):
        raise ValueError(f"`times` has {len(times)} samples but `units` {len(units)}.")
    for i, u in enumerate(units):
        if u.size and u.dtype.kind not in "iu":
            raise ValueError(f"`units` of sample {i} must be integer channel ids, got {u.dtype}.")
    _check_events(times, units, n_channels, "`times`/`units`")
    meter = as_loop_meter(progress)
    meter.loop_start(len(times), "binning events")
    try:
        for i, (t, u) in enumerate(zip(times, units)):
            n_events += t.size
            early = (t >= 0) & (t < t_max)
            n_late += int((~early).sum())
            b = np.floor(t[early] / t_max * n_steps).astype(np.int64)
            c = u[early] // group
            flat = np.unique(b * channels + c)
            n_merged += int(early.sum()) - flat.size
            out[i].reshape(-1)[flat] = True
            meter.loop_update(1)
    finally:
        meter.loop_end()
    return out, BinningInfo(n_events, n_late, n_merged)


def _cache_file(cache_dir, path, params):
    st = os.stat(path)
    key = json.dumps({"file": str(pathlib.Path(path).resolve()), "size": st.st_size,
                      "mtime": st.st_mtime_ns, **params}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return pathlib.Path(cache_dir) / f"{pathlib.Path(path).stem}-{digest}.npz"


def _read_cache(cache, params):
    """The cached `(bits, labels, info)`, or None (with a warning) if the file is damaged:
    the caller then rebuilds it from the HDF5 file, which is slower but never wrong."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            bits, labels = np.asarray(z["bits"]), np.asarray(z["labels"], np.int64)
            length, info = int(z["length"]), BinningInfo(*(int(v) for v in z["info"]))
        n_bytes = -(-params["n_steps"] // 8)
        if not (bits.dtype == np.uint8 and bits.shape[1:] == (n_bytes, params["channels"])
                and length == params["n_steps"] and labels.shape == (bits.shape[0],)):
            raise ValueError(f"arrays of shapes {bits.shape} and {labels.shape}")
    except Exception as e:  # BadZipFile, EOFError, KeyError, ValueError, OSError, ...
        warnings.warn(
            f"the cache {str(cache)!r} is damaged ({type(e).__name__}: {e}); rebuilding it "
            f"from the HDF5 file.",
            stacklevel=3,
        )
        return None
    return bits, labels, info


def _write_cache(cache, bits, labels, n_steps, info):
    """Write the cache atomically; a folder that cannot be written costs speed, not the load."""
    tmp = cache.with_suffix(".tmp.npz")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, bits=bits, labels=labels, length=n_steps, info=np.array(info))
        os.replace(tmp, cache)
    except OSError as e:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        warnings.warn(
            f"could not write the cache {str(cache)!r} ({e}); loaded without caching. Pass a "
            f"writable `cache_dir`, or `cache_dir=False`.",
            stacklevel=3,
        )


def load_shd(
    path,
    *,
    n_steps: int | None = 100,
    dt: float | None = None,
    t_max: float = 1.0,
    channels: int = N_CHANNELS,
    cache_dir=None,
    dataset: str = "shd",
    device=None,
    progress: bool | AbstractLoopMeter = False,
):
    """Load an SHD or SSC split (one official `.h5` file), binned and bit-packed on device.

    ```python
    xs, ys = snnx.data.load_shd("data/shd_train.h5", n_steps=100, channels=140)
    model, history = snnx.fit(model, loss, opt, (xs, ys), ...)
    ```

    **Arguments:**

    - `path`: the (gunzipped) HDF5 file, e.g. `shd_train.h5` or `ssc_valid.h5`.
    - `n_steps`: number of time bins over `[0, t_max)`; or give `dt` instead.
    - `dt`: bin width in seconds (then `n_steps = ceil(t_max / dt)`).
    - `t_max`: cut-off in seconds (SHD samples last up to ~1.4 s; 1.0 keeps most). Events
        after it are counted and reported with a warning.
    - `channels`: 700, or a divisor of it to merge neighbouring channels.
    - `cache_dir`: where to keep the binned, packed arrays (`.npz`); default: next to `path`
        in `.snnx_cache/`; `False` disables caching. The cache key includes every binning
        parameter and the file's size and modification time. A damaged cache is rebuilt
        (with a warning); a folder that cannot be written is skipped (with a warning).
    - `dataset`: `"shd"` (20 classes) or `"ssc"` (35 classes): the range labels are checked
        against, and the source named in messages.
    - `device`: where to put the packed spikes (default: JAX's default device).
    - `progress`: False (default) shows nothing; True a tqdm bar over the samples while
        binning (not when the cache is read), or an `snnx.train.AbstractLoopMeter`, as in
        `snnx.fit`.

    **Returns:**

    `(xs, ys)`: `xs` an `snnx.data.PackedSpikes` of shape `(N, n_steps, channels)`, `ys` int
    labels `(N,)`; exactly the `train_data` form `snnx.fit` takes. `load_shd.last_info` holds
    the `BinningInfo` of the latest call.

    **Raises:**

    `FileNotFoundError` (with where to get the file), `ValueError` for a corrupt or foreign
    file (not HDF5, missing datasets, non-integer units or labels, labels outside the
    dataset's classes, channel ids outside 0..699, NaN, infinite or negative spike times) or
    bad binning parameters.
    """
    if dataset not in SOURCES:
        raise ValueError(f"`dataset` must be 'shd' or 'ssc', got {dataset!r}.")
    if dt is not None:
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"`dt` must be a positive bin width in seconds, got {dt!r}.")
        n_steps = int(np.ceil(t_max / dt - 1e-9))
        t_max = n_steps * dt
    if n_steps is None:
        raise ValueError("Give `n_steps` (number of bins) or `dt` (bin width).")
    if not (isinstance(n_steps, (int, np.integer)) and n_steps > 0):
        raise ValueError(f"`n_steps` must be a positive int, got {n_steps!r}.")
    path = pathlib.Path(path)
    if not path.exists():
        raise _missing(path, dataset)
    params = {"n_steps": int(n_steps), "t_max": float(t_max), "channels": int(channels)}
    cache = None
    if cache_dir is not False:
        cache = _cache_file(cache_dir or path.parent / ".snnx_cache", path, params)
    cached = _read_cache(cache, params) if cache is not None and cache.exists() else None
    if cached is not None:
        bits, labels, info = cached
        xs = PackedSpikes.from_bits(bits, n_steps, device=device)
    else:
        times, units, labels = _read_h5(path, dataset)
        dense, info = bin_events(times, units, n_steps=n_steps, t_max=t_max, channels=channels,
                                 progress=progress)
        xs = PackedSpikes(dense, device=device)
        if cache is not None:
            _write_cache(cache, np.asarray(xs.bits), labels, n_steps, info)
    if info.n_late or info.n_merged:
        warnings.warn(
            f"{path.name}: {info.n_late} of {info.n_events} events fell at or after "
            f"t_max={t_max} s and were left out, and {info.n_merged} shared a bin with "
            f"another event of the same channel and were merged into one spike (raise "
            f"`n_steps`/`t_max` to keep more).",
            stacklevel=2,
        )
    load_shd.last_info = info
    return xs, np.asarray(labels, np.int64)


load_shd.last_info = None
