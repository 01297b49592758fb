"""N-MNIST (Orchard et al. 2015) from the original binary event files.

Each file is a list of 40-bit events: byte 0 is x, byte 1 is y (0..33 on the 34x34 ATIS
sensor), bit 7 of byte 2 the polarity (1 = ON), and bits 22..0 across bytes 2-4 the
timestamp in microseconds. Samples live in `Train/<digit>/*.bin` and `Test/<digit>/*.bin`.
Each recording is three ~100 ms saccades of the sensor.
"""

import pathlib
import warnings

import numpy as np

from ..train._progress import AbstractLoopMeter, as_loop_meter
from .packing import PackedSpikes
from .shd import BinningInfo

SENSOR = 34
SACCADE_US = 100_000
SOURCE = "https://www.garrickorchard.com/datasets/n-mnist (Train.zip, Test.zip)"


def read_events(path) -> dict[str, np.ndarray]:
    """Decode one N-MNIST `.bin` file.

    **Arguments:**

    - `path`: the file.

    **Returns:**

    A dict of arrays `x`, `y` (uint8), `p` (uint8, 1 = ON) and `t` (int64, microseconds).

    **Raises:**

    `FileNotFoundError`; `ValueError` if the length is not a multiple of 5 bytes (truncated)
    or coordinates fall outside the 34x34 sensor.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"`path` {str(path)!r} does not exist; N-MNIST is at {SOURCE}.")
    if path.is_dir():
        raise IsADirectoryError(f"`path` {str(path)!r} is a directory; give one `.bin` file.")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise ValueError(
            f"`path` {str(path)!r} is {raw.size} bytes, not a multiple of 5 (40-bit events): "
            f"the file is truncated or not an N-MNIST recording."
        )
    ev = raw.reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    if ev.size and (x.max() >= SENSOR or y.max() >= SENSOR):
        raise ValueError(
            f"`path` {str(path)!r} has events outside the 34x34 sensor (max x {x.max()}, y "
            f"{y.max()}): not an N-MNIST recording, or a damaged one."
        )
    p = ev[:, 2] >> 7
    t = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    return {"x": x.astype(np.uint8), "y": y.astype(np.uint8), "p": p.astype(np.uint8), "t": t}


def bin_frames(events, *, n_steps, saccades=(0, 1, 2)):
    """Bin one recording into binary frames `(n_steps, 2, 34, 34)` (channel 0 = OFF, 1 = ON).

    **Arguments:**

    - `events`: a dict from `read_events`.
    - `n_steps`: number of frames covering the selected saccades.
    - `saccades`: which of the three 100 ms saccades to keep, a contiguous range.

    **Returns:**

    `(frames bool, (n_events, n_outside, n_merged))`.
    """
    sacc = sorted(set(saccades))
    if not sacc or sacc[0] < 0 or sacc[-1] > 2 or sacc != list(range(sacc[0], sacc[-1] + 1)):
        raise ValueError(f"`saccades` must be a contiguous subset of (0, 1, 2), got {saccades!r}.")
    t0, t1 = sacc[0] * SACCADE_US, (sacc[-1] + 1) * SACCADE_US
    t = events["t"]
    inside = (t >= t0) & (t < t1)
    b = (t[inside] - t0) * n_steps // (t1 - t0)
    flat = ((b * 2 + events["p"][inside]) * SENSOR + events["y"][inside]) * SENSOR
    flat = np.unique(flat + events["x"][inside])
    frames = np.zeros(n_steps * 2 * SENSOR * SENSOR, bool)
    frames[flat] = True
    return frames.reshape(n_steps, 2, SENSOR, SENSOR), (
        t.size, int((~inside).sum()), int(inside.sum()) - flat.size
    )


def load_nmnist(root, *, split="train", n_steps=30, saccades=(0, 1, 2), limit=None,
                device=None, progress: bool | AbstractLoopMeter = False):
    """Load an N-MNIST split from the original folder layout, binned and bit-packed.

    **Arguments:**

    - `root`: the folder holding `Train/` and `Test/` (each with `0/` .. `9/` of `.bin`).
    - `split`: `"train"` or `"test"`.
    - `n_steps`: frames over the selected saccades (default 30).
    - `saccades`: which 100 ms saccades to keep (default all three).
    - `limit`: at most this many files per digit (for quick experiments), or None.
    - `device`: where to put the packed frames.
    - `progress`: False (default) shows nothing, True a tqdm bar over the files, or an
        `snnx.train.AbstractLoopMeter` (told once per file), as in `snnx.fit`.

    **Returns:**

    `(xs, ys)`: `PackedSpikes` of shape `(N, n_steps, 2, 34, 34)` and int labels; events
    outside the saccades and events merged into an occupied pixel-bin are counted in
    `load_nmnist.last_info` and reported with a warning.
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
    if not (isinstance(n_steps, (int, np.integer)) and n_steps > 0):
        raise ValueError(f"`n_steps` must be a positive int, got {n_steps!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 1):
        raise ValueError(f"`limit` must be None or a positive int (files per digit), got "
                         f"{limit!r}.")
    folder = pathlib.Path(root) / split.capitalize()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{str(folder)!r} does not exist: unzip N-MNIST's {split.capitalize()}.zip from "
            f"{SOURCE} into `root` so that it holds {split.capitalize()}/0 .. "
            f"{split.capitalize()}/9."
        )
    frames, labels, totals = [], [], np.zeros(3, np.int64)
    missing, empty = [], []
    by_digit = [sorted((folder / str(digit)).glob("*.bin"))[:limit] for digit in range(10)]
    meter = as_loop_meter(progress)
    meter.loop_start(sum(map(len, by_digit)), f"N-MNIST {split}")
    try:
        for digit, files in enumerate(by_digit):
            if not files:
                missing.append(digit)
            for f in files:
                events = read_events(f)
                if not events["t"].size:
                    empty.append(f.name)
                fr, counts = bin_frames(events, n_steps=n_steps, saccades=saccades)
                frames.append(fr)
                labels.append(digit)
                totals += counts
                meter.loop_update(1)
    finally:
        meter.loop_end()
    if not frames:
        raise ValueError(f"`root`: {str(folder)!r} holds no `<digit>/*.bin` files.")
    if missing:
        warnings.warn(
            f"N-MNIST {split}: `root` {str(root)!r} has no `.bin` files for digits {missing} "
            f"(an incomplete unzip?): those classes are absent from the data.",
            stacklevel=2,
        )
    if empty:
        warnings.warn(
            f"N-MNIST {split}: {len(empty)} recordings hold no events (e.g. {empty[0]!r}: "
            f"truncated to 0 bytes?); they are kept as all-zero samples.",
            stacklevel=2,
        )
    info = BinningInfo(*(int(v) for v in totals))
    if info.n_late or info.n_merged:
        warnings.warn(
            f"N-MNIST {split}: {info.n_late} of {info.n_events} events fell outside the "
            f"selected saccades and {info.n_merged} were merged into an occupied pixel-bin.",
            stacklevel=2,
        )
    load_nmnist.last_info = info
    return PackedSpikes(np.stack(frames), device=device), np.asarray(labels, np.int64)


load_nmnist.last_info = None
