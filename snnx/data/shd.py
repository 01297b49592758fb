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

from .packing import PackedSpikes

N_CHANNELS = 700
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
                    f"{str(path)!r} has no dataset `{name}`: not an SHD/SSC file (expected "
                    f"`spikes/times`, `spikes/units`, `labels`)."
                )
        try:
            times = [np.asarray(t, np.float64) for t in f["spikes/times"]]
            units = [np.asarray(u, np.int64) for u in f["spikes/units"]]
            labels = np.asarray(f["labels"], np.int64)
        except OSError as e:
            raise ValueError(
                f"{str(path)!r} is corrupt: reading its spikes failed ({e})."
            ) from None
    if not (len(times) == len(units) == len(labels)):
        raise ValueError(
            f"{str(path)!r} is inconsistent: {len(times)} spike-time arrays, {len(units)} unit "
            f"arrays and {len(labels)} labels."
        )
    for i, (t, u) in enumerate(zip(times, units)):
        if t.shape != u.shape:
            raise ValueError(
                f"{str(path)!r} sample {i} has {t.size} spike times but {u.size} units."
            )
    return times, units, labels


def bin_events(times, units, *, n_steps, t_max, n_channels=N_CHANNELS, channels=N_CHANNELS):
    """Bin event lists into a binary `(N, n_steps, channels)` array.

    **Arguments:**

    - `times`, `units`: per sample, arrays of event times (seconds) and channel ids.
    - `n_steps`: number of time bins covering `[0, t_max)`.
    - `t_max`: cut-off time; later events are counted in `BinningInfo.n_late`.
    - `n_channels`: channels of the source (700 for SHD/SSC).
    - `channels`: output channels; `n_channels` must be a multiple: neighbouring source
        channels are merged (700 -> 350, 140, 100, 70, ...).

    **Returns:**

    `(spikes (N, n_steps, channels) bool, BinningInfo)`.
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
    for i, (t, u) in enumerate(zip(times, units)):
        if u.size and (u.min() < 0 or u.max() >= n_channels):
            raise ValueError(
                f"sample {i} has channel ids outside [0, {n_channels}): min {u.min()}, max "
                f"{u.max()}."
            )
        n_events += t.size
        early = (t >= 0) & (t < t_max)
        n_late += int((~early).sum())
        b = np.floor(t[early] / t_max * n_steps).astype(np.int64)
        c = u[early] // group
        flat = np.unique(b * channels + c)
        n_merged += int(early.sum()) - flat.size
        out[i].reshape(-1)[flat] = True
    return out, BinningInfo(n_events, n_late, n_merged)


def _cache_file(cache_dir, path, params):
    st = os.stat(path)
    key = json.dumps({"file": str(pathlib.Path(path).resolve()), "size": st.st_size,
                      "mtime": st.st_mtime_ns, **params}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return pathlib.Path(cache_dir) / f"{pathlib.Path(path).stem}-{digest}.npz"


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
        parameter and the file's size and modification time.
    - `dataset`: `"shd"` or `"ssc"` (only used in messages).
    - `device`: where to put the packed spikes (default: JAX's default device).

    **Returns:**

    `(xs, ys)`: `xs` an `snnx.data.PackedSpikes` of shape `(N, n_steps, channels)`, `ys` int
    labels `(N,)`; exactly the `train_data` form `snnx.fit` takes. `load_shd.last_info` holds
    the `BinningInfo` of the latest call.

    **Raises:**

    `FileNotFoundError` (with where to get the file), `ValueError` for a corrupt or foreign
    file or bad binning parameters.
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
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            bits, labels, length = z["bits"], z["labels"], int(z["length"])
            info = BinningInfo(*(int(v) for v in z["info"]))
        xs = PackedSpikes.from_bits(bits, length, device=device)
    else:
        times, units, labels = _read_h5(path, dataset)
        dense, info = bin_events(times, units, n_steps=n_steps, t_max=t_max, channels=channels)
        xs = PackedSpikes(dense, device=device)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, bits=np.asarray(xs.bits), labels=labels, length=n_steps,
                     info=np.array(info))
            os.replace(tmp, cache)
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
