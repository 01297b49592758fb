"""The tonic bridge: tonic's event recordings as `PackedSpikes` or `SpikeEvents` for `fit`.

tonic (`pip install 'snnx[tonic]'`) gives every neuromorphic dataset the same form: a
dataset indexable as `events, label = dataset[i]`, where `events` is a NumPy structured
array with fields `("x", "y", "t", "p")` for cameras (N-MNIST, DVS Gesture, ...) or
`("t", "x", "p")` for audio (SHD, SSC; `sensor_size=(700, 1, 1)`), times in microseconds.
This module bins those events into fixed time steps of width `dt` from `t_start`, so every
sample has the same `n_steps`, and stores the spikes bit-packed on the device
(`to_packed`) or as an event table (`to_events`):

```python
ds = tonic.datasets.NMNIST("data", train=True)            # no `transform`: raw events
xs, ys = snnx.data.tonic.to_packed(ds, sensor_size=ds.sensor_size, dt=10_000, n_steps=30)
model, history = snnx.fit(model, loss, opt, (xs, ys), ...)  # xs: (N, 30, 2, 34, 34)
```

The frame layout is that of tonic's `ToFrame`: `(P, Y, X)` per step for cameras and
`(P, X)` for audio (give `shape=(700,)` for a flat SHD input). The binning equals
`ToFrame(sensor_size, time_window=dt, start_time=t_start, end_time=t_start + n_steps * dt)`
clipped to 0/1, except that `t_start` is the same for every sample (tonic's default starts at
each recording's first event). Events outside the window and events merged into an occupied
bin are counted (`last_info`) and reported with a warning, never dropped silently.
"""

import numbers
import warnings

import numpy as np

from ..events import SpikeEvents
from ..train._progress import AbstractLoopMeter, as_loop_meter
from .packing import PackedSpikes, pack_spikes
from .shd import BinningInfo


def _check_sensor(sensor_size, has_y: bool) -> tuple[int, int, int]:
    ok = isinstance(sensor_size, (tuple, list)) and len(sensor_size) == 3 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
        for s in sensor_size
    )
    if not ok:
        raise ValueError(
            f"`sensor_size` must be tonic's `(X, Y, P)`, three positive ints (e.g. "
            f"`tonic.datasets.NMNIST.sensor_size` = (34, 34, 2), SHD's (700, 1, 1)), got "
            f"{sensor_size!r}."
        )
    x, y, p = (int(s) for s in sensor_size)
    if not has_y and y != 1:
        raise ValueError(
            f"`sensor_size` {tuple(sensor_size)} has Y={y}, but the events have no `y` field "
            f"(audio, as SHD): give `(X, 1, P)`."
        )
    return x, y, p


def _check_binning(dt, n_steps, t_start):
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"`n_steps` must be a positive int (time bins), got {n_steps!r}.")
    if not (isinstance(dt, numbers.Real) and np.isfinite(dt) and dt > 0):
        raise ValueError(
            f"`dt` must be a positive bin width in the events' time unit (tonic: "
            f"microseconds, e.g. `dt=1000` for 1 ms), got {dt!r}."
        )
    if not (isinstance(t_start, numbers.Real) and np.isfinite(t_start)):
        raise ValueError(f"`t_start` must be a finite time, got {t_start!r}.")


def _fields(events, where):
    names = events.dtype.names if isinstance(events, np.ndarray) else None
    if names is None or not {"t", "x", "p"} <= set(names):
        got = events.dtype if isinstance(events, np.ndarray) else type(events).__name__
        raise ValueError(
            f"{where} must be a tonic event array: a NumPy structured array with fields "
            f"('x', 'y', 't', 'p') or ('t', 'x', 'p'), got {got}. Build the tonic dataset "
            f"without a `transform` that makes frames: snnx bins the events itself."
        )
    return "y" in names


def _flat_bins(events, sensor, dt, n_steps, t_start, where):
    """Sorted unique `bin * n_features + feature` of one recording, and its counts."""
    has_y = _fields(events, where)
    x_size, y_size, p_size = _check_sensor(sensor, has_y)
    t = np.asarray(events["t"], np.float64)
    x = np.asarray(events["x"])
    y = np.asarray(events["y"]) if has_y else np.zeros_like(x)
    p = np.asarray(events["p"])
    for name, v, size in (("x", x, x_size), ("y", y, y_size)):
        if v.size and (v.dtype.kind not in "iub" or v.min() < 0 or v.max() >= size):
            raise ValueError(
                f"{where}: `{name}` must hold integers in [0, {size}) for `sensor_size` "
                f"{tuple(sensor)}, found {v.dtype} values in [{v.min()}, {v.max()}]."
            )
    if p.size and p.dtype.kind not in "iub":
        raise ValueError(f"{where}: polarities `p` must be integers or booleans, got {p.dtype}.")
    p = p.astype(np.int64)
    if p_size == 1:
        # As tonic's ToFrame: a single-polarity sensor puts every event in polarity 0.
        if np.unique(p).size > 1:
            raise ValueError(
                f"{where}: `sensor_size` has one polarity (P=1) but the events hold several "
                f"({np.unique(p)[:4]}...): give P=2."
            )
        p = np.zeros_like(p)
    elif p.size and (p.min() < 0 or p.max() >= p_size):
        raise ValueError(
            f"{where}: polarities `p` must lie in [0, {p_size}), found [{p.min()}, {p.max()}]."
        )
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{where}: event times `t` must be finite (the recording is damaged).")
    b = np.floor((t - t_start) / dt)
    inside = (b >= 0) & (b < n_steps)
    feature = (p * y_size + y) * x_size + x
    n_features = p_size * y_size * x_size
    flat = np.unique(b[inside].astype(np.int64) * n_features + feature[inside])
    n_in = int(inside.sum())
    counts = (t.size, t.size - n_in, n_in - flat.size)
    frame = (p_size, y_size, x_size) if has_y else (p_size, x_size)
    return flat, counts, frame, n_features


def _step_shape(frame, n_features, shape):
    if shape is None:
        return frame
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"`shape` {shape} must hold the {n_features} values of one frame {frame} (e.g. "
            f"`shape=({n_features},)` for a flat input)."
        )
    return shape


def to_frames(events, *, sensor_size, dt, n_steps, t_start=0.0, shape=None):
    """Bin one tonic recording into binary frames `(n_steps, *frame)`.

    **Arguments:**

    - `events`: a structured array with fields `("x", "y", "t", "p")` or `("t", "x", "p")`.
    - `sensor_size`: tonic's `(X, Y, P)`; `(X, 1, P)` for audio.
    - `dt`: bin width, in the events' time unit (tonic: microseconds).
    - `n_steps`: number of bins; bin `k` covers `[t_start + k dt, t_start + (k+1) dt)`.
    - `t_start`: start of the first bin (default 0, the same for every recording).
    - `shape`: the per-step output shape; default tonic's frame `(P, Y, X)` or `(P, X)`.

    **Returns:**

    `(frames bool (n_steps, *shape), BinningInfo)`: `n_late` counts events outside the
    window (before `t_start` or from `t_start + n_steps * dt` on), `n_merged` events that
    fell into an occupied bin.

    **Raises:**

    `ValueError` for an array that is not a tonic event array, coordinates or polarities
    outside `sensor_size`, non-finite times, or bad `dt`/`n_steps`/`t_start`/`shape`.
    """
    _check_binning(dt, n_steps, t_start)
    flat, counts, frame, n_features = _flat_bins(events, sensor_size, dt, n_steps, t_start,
                                                 "`events`")
    out = np.zeros(n_steps * n_features, bool)
    out[flat] = True
    return out.reshape((n_steps,) + _step_shape(frame, n_features, shape)), BinningInfo(*counts)


def _convert(dataset, sensor_size, dt, n_steps, t_start, progress, what):
    """Per sample `(flat bins, label)` over a dataset, with the totals and the frame."""
    _check_binning(dt, n_steps, t_start)
    try:
        n = len(dataset)
    except TypeError:
        raise TypeError(
            f"`dataset` must be indexable with a length (a tonic dataset, or a list of "
            f"`(events, label)` pairs), got {type(dataset).__name__}."
        ) from None
    if n == 0:
        raise ValueError("`dataset` is empty.")
    flats, labels, totals = [], [], np.zeros(3, np.int64)
    frame = n_features = None
    meter = as_loop_meter(progress)
    meter.loop_start(n, what)
    try:
        for i in range(n):
            item = dataset[i]
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ValueError(
                    f"`dataset[{i}]` must be an `(events, label)` pair, got "
                    f"{type(item).__name__}."
                )
            events, label = item
            label = np.asarray(label)
            if label.shape != () or label.dtype.kind not in "iu":
                raise ValueError(
                    f"`dataset[{i}]` has label {label!r}: labels must be integer classes "
                    f"(set tonic's `target_transform` to produce one int)."
                )
            flat, counts, frame, n_features = _flat_bins(
                events, sensor_size, dt, n_steps, t_start, f"`dataset[{i}]` events"
            )
            flats.append(flat)
            labels.append(int(label))
            totals += counts
            meter.loop_update(1)
    finally:
        meter.loop_end()
    info = BinningInfo(*(int(v) for v in totals))
    if info.n_late or info.n_merged:
        warnings.warn(
            f"snnx.data.tonic: {info.n_late} of {info.n_events} events fell outside "
            f"[t_start, t_start + n_steps * dt) = [{t_start}, {t_start + n_steps * dt}) and "
            f"were left out, and {info.n_merged} shared a bin with another event of the same "
            f"pixel/channel and were merged into one spike (change `dt`/`n_steps` to keep "
            f"more).",
            stacklevel=3,
        )
    return flats, np.asarray(labels, np.int64), info, frame, n_features


def to_packed(dataset, *, sensor_size, dt, n_steps, t_start=0.0, shape=None, device=None,
              progress: bool | AbstractLoopMeter = False):
    """A tonic dataset as bit-packed spikes on the device and labels: `fit`'s `train_data`.

    **Arguments:**

    - `dataset`: indexable, `events, label = dataset[i]`, with `len`: a tonic dataset built
        without a frame `transform`, or a list of `(events, label)` pairs.
    - `sensor_size`, `dt`, `n_steps`, `t_start`, `shape`: the binning, as in `to_frames`.
    - `device`: where to put the packed bits (default JAX's default device).
    - `progress`: False (default) shows nothing, True a tqdm bar over the samples, or an
        `snnx.train.AbstractLoopMeter` (told once per sample), as in `snnx.fit`.

    **Returns:**

    `(xs, ys)`: an `snnx.data.PackedSpikes` `(N, n_steps, *shape)` and int labels `(N,)`.
    `to_packed.last_info` holds the `BinningInfo` (totals over the dataset); events outside
    the window or merged into an occupied bin are also reported with a warning.

    **Raises:**

    `TypeError` for a `dataset` without length; `ValueError` for an empty one, an item that
    is not `(events, label)`, a label that is not one integer, and everything `to_frames`
    refuses (naming the sample).
    """
    flats, labels, info, frame, n_features = _convert(
        dataset, sensor_size, dt, n_steps, t_start, progress, "binning events")
    step_shape = _step_shape(frame, n_features, shape)
    bits = np.empty((len(flats), -(-n_steps // 8)) + step_shape, np.uint8)
    for i, flat in enumerate(flats):  # one sample at a time: the dense array never exists
        dense = np.zeros(n_steps * n_features, bool)
        dense[flat] = True
        bits[i] = pack_spikes(dense.reshape((n_steps,) + step_shape), axis=0)
    to_packed.last_info = info
    return PackedSpikes.from_bits(bits, n_steps, device=device), labels


def to_events(dataset, *, sensor_size, dt, n_steps, t_start=0.0, max_events=None,
              progress: bool | AbstractLoopMeter = False):
    """A tonic dataset as an `snnx.SpikeEvents` table `(N, n_steps, max_events)` over the
    flattened frame, and labels: the event-driven input of `snnx.fit` (first layer a
    `Linear` of `P * Y * X` inputs).

    **Arguments:**

    - `dataset`, `sensor_size`, `dt`, `n_steps`, `t_start`, `progress`: as in `to_packed`.
    - `max_events`: the padded events per step; default the busiest step's count (a smaller
        value is refused, naming the needed one).

    **Returns:**

    `(events, ys)`: `snnx.SpikeEvents` with `n_in = P * Y * X` (inputs ordered as tonic's
    frame `(P, Y, X)` flattened), and int labels `(N,)`; `to_events.last_info` holds the
    `BinningInfo`.

    **Raises:**

    As `to_packed`, and `ValueError` for a `max_events` below the busiest step's count.
    """
    flats, labels, info, frame, n_features = _convert(
        dataset, sensor_size, dt, n_steps, t_start, progress, "binning events")
    per_step = [np.bincount(f // n_features, minlength=n_steps) for f in flats]
    most = max(int(c.max()) for c in per_step)
    if max_events is None:
        max_events = max(most, 1)
    elif isinstance(max_events, bool) or not isinstance(max_events, numbers.Integral):
        raise ValueError(f"`max_events` must be an int or None, got {max_events!r}.")
    elif max_events < most:
        raise ValueError(
            f"`max_events`={max_events} is too small: one time step has {most} events. Use "
            f"max_events>={most} (or None for exactly that)."
        )
    index = np.full((len(flats), n_steps, int(max_events)), n_features, np.int32)
    for i, (flat, counts) in enumerate(zip(flats, per_step)):
        steps = flat // n_features  # sorted by step, then by input (np.unique)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        index[i, steps, np.arange(flat.size) - starts[steps]] = flat % n_features
    to_events.last_info = info
    return SpikeEvents(index, n_features), labels


to_packed.last_info = None
to_events.last_info = None
