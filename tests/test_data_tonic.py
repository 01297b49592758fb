"""snnx.data.tonic: tonic's structured event arrays and datasets as PackedSpikes/SpikeEvents.

The event arrays are built here in tonic's formats (no download). The binning is checked
against an independent dense count written here, and, where tonic is installed, against
tonic's own `ToFrame`.
"""

import equinox as eqx
import numpy as np
import pytest

import snnx
from snnx.data import tonic as st
from snnx.train._data import check_data

CAMERA = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])  # tonic NMNIST.dtype
AUDIO = np.dtype([("t", int), ("x", int), ("p", int)])  # tonic SHD.dtype (t in us, p = 1)


def _camera(n, seed, *, size=(6, 5, 2), t_max=1000):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, CAMERA)
    ev["x"] = rng.integers(0, size[0], n)
    ev["y"] = rng.integers(0, size[1], n)
    ev["p"] = rng.integers(0, size[2], n)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    return ev


def _audio(n, seed, *, channels=12, t_max=1000):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, AUDIO)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["x"] = rng.integers(0, channels, n)
    ev["p"] = 1  # tonic's SHD adds an artificial polarity of 1
    return ev


def _dense_reference(ev, size, dt, n_steps, t_start):
    """A naive count per (step, p, y, x), written without snnx (np.add.at), clipped to 0/1."""
    x_size, y_size, p_size = size
    has_y = "y" in ev.dtype.names
    out = np.zeros((n_steps, p_size, y_size, x_size), np.int64)
    for e in ev:
        k = int(np.floor((e["t"] - t_start) / dt))
        if 0 <= k < n_steps:
            p = 0 if p_size == 1 else e["p"]
            out[k, p, e["y"] if has_y else 0, e["x"]] += 1
    out = out if has_y else out[:, :, 0]
    return np.minimum(out, 1).astype(bool), int(out.sum())


@pytest.mark.parametrize("t_start", [0, 150])
def test_to_frames_equals_a_naive_count(t_start):
    ev = _camera(400, 0)
    frames, info = st.to_frames(ev, sensor_size=(6, 5, 2), dt=100, n_steps=8, t_start=t_start)
    ref, n_inside = _dense_reference(ev, (6, 5, 2), 100, 8, t_start)
    assert frames.shape == (8, 2, 5, 6) and frames.dtype == bool
    np.testing.assert_array_equal(frames, ref)
    assert info.n_events == 400
    assert info.n_late == 400 - n_inside > 0  # t_start=0: 800..999 out; 150: both ends
    assert info.n_merged == n_inside - int(ref.sum()) > 0

    audio = _audio(300, 1)
    frames, info = st.to_frames(audio, sensor_size=(12, 1, 1), dt=50, n_steps=20,
                                t_start=t_start, shape=(12,))
    ref, n_inside = _dense_reference(audio, (12, 1, 1), 50, 20, t_start)
    np.testing.assert_array_equal(frames, ref.reshape(20, 12))
    assert info.n_merged == n_inside - int(ref.sum())


def test_to_frames_equals_tonic_to_frame():
    tonic = pytest.importorskip("tonic")
    for ev, size in ((_camera(500, 2), (6, 5, 2)), (_audio(500, 3), (12, 1, 1))):
        ours, _ = st.to_frames(ev, sensor_size=size, dt=100, n_steps=10)
        to_frame = tonic.transforms.ToFrame(sensor_size=size, time_window=100, start_time=0,
                                            end_time=1000)
        theirs = to_frame(ev.copy())  # ToFrame sets p = 0 in place for one polarity
        assert theirs.shape == ours.shape
        np.testing.assert_array_equal(ours, np.minimum(theirs, 1))


def test_to_packed_and_to_events_feed_fit(getkey):
    dataset = [(_audio(200 + 10 * i, i), i % 3) for i in range(12)]
    kw = dict(sensor_size=(12, 1, 1), dt=50, n_steps=20)
    with pytest.warns(UserWarning, match="merged into one spike"):
        xs, ys = st.to_packed(dataset, shape=(12,), **kw)
    assert isinstance(xs, snnx.data.PackedSpikes) and xs.shape == (12, 20, 12)
    np.testing.assert_array_equal(ys, np.arange(12) % 3)
    for i, (ev, _) in enumerate(dataset):
        ref, _ = _dense_reference(ev, (12, 1, 1), 50, 20, 0)
        np.testing.assert_array_equal(np.asarray(xs.unpack(i)), ref.reshape(20, 12))
    assert st.to_packed.last_info.n_events == sum(ev.size for ev, _ in dataset)
    with pytest.warns(UserWarning, match="merged"):
        events, ys2 = st.to_events(dataset, **kw)
    assert events.n_in == 12 and events.shape == (12, 20, 12)
    assert eqx.tree_equal(events, snnx.SpikeEvents.from_dense(xs.unpack()))
    np.testing.assert_array_equal(ys2, ys)
    with pytest.warns(UserWarning, match="merged"):
        wide, _ = st.to_events(dataset, max_events=events.max_events + 3, **kw)
    np.testing.assert_array_equal(np.asarray(wide.to_dense()), np.asarray(events.to_dense()))
    # both are what fit takes (its own data check accepts them: N, T, per-step shape), and
    # a model gives the same outputs on either (fit on events = fit on dense: test_events.py)
    for data in (xs, events):
        assert check_data((data, ys), "train_data")[2:] == (12, 20, (12,))
    model = snnx.Sequential([eqx.nn.Linear(12, 8, key=getkey()), snnx.LIF(tau=5.0)])
    np.testing.assert_allclose(snnx.run(model, events[3])[0], snnx.run(model, xs.unpack(3))[0],
                               rtol=1e-6, atol=1e-6)


def test_camera_dataset_keeps_tonic_layout():
    dataset = [(_camera(100, i, t_max=800), i) for i in range(3)]
    with pytest.warns(UserWarning, match="29 shared a bin"):
        xs, ys = st.to_packed(dataset, sensor_size=(6, 5, 2), dt=100, n_steps=8)
    assert xs.shape == (3, 8, 2, 5, 6)
    ref, _ = _dense_reference(dataset[1][0], (6, 5, 2), 100, 8, 0)
    np.testing.assert_array_equal(np.asarray(xs.unpack(1)), ref)


class _Dataset:
    """A tonic-like dataset: `len` and `dataset[i] -> (events, target)`."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_real_tonic_dataset_object(tmp_path):
    """A tonic `Dataset` subclass with tonic's own SHD dtype and an `np.int64` target."""
    tonic = pytest.importorskip("tonic")
    items = [(_audio(50, i), np.int64(i)) for i in range(3)]

    class Tiny(tonic.Dataset):
        sensor_size, dtype, ordering = (12, 1, 1), AUDIO, AUDIO.names

        def __getitem__(self, i):
            return items[i]

        def __len__(self):
            return len(items)

    ds = Tiny(str(tmp_path))
    with pytest.warns(UserWarning, match="merged"):
        xs, ys = st.to_packed(ds, sensor_size=Tiny.sensor_size, dt=100, n_steps=10, shape=(12,))
    assert xs.shape == (3, 10, 12) and ys.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sensor_size=(6, 5)), "`sensor_size`"),
        (dict(sensor_size=(6, 5, 0)), "`sensor_size`"),
        (dict(dt=0), "`dt`"),
        (dict(dt=float("nan")), "`dt`"),
        (dict(n_steps=0), "`n_steps`"),
        (dict(n_steps=2.5), "`n_steps`"),
        (dict(t_start=float("inf")), "`t_start`"),
        (dict(shape=(7,)), "`shape`"),
        (dict(sensor_size=(5, 5, 2)), "`x`"),
        (dict(sensor_size=(6, 4, 2)), "`y`"),
        (dict(sensor_size=(6, 5, 1)), "one polarity"),
    ],
)
def test_to_frames_bad_arguments(kwargs, match):
    base = dict(sensor_size=(6, 5, 2), dt=100, n_steps=8)
    with pytest.raises(ValueError, match=match):
        st.to_frames(_camera(50, 0), **{**base, **kwargs})


def test_bad_events_and_datasets():
    kw = dict(sensor_size=(12, 1, 1), dt=50, n_steps=20)
    with pytest.raises(ValueError, match="`events` must be a tonic event array"):
        st.to_frames(np.zeros((10, 4)), **kw)  # frames or a plain array, not events
    with pytest.raises(ValueError, match="Y=5"):
        st.to_frames(_audio(10, 0), sensor_size=(12, 5, 1), dt=50, n_steps=20)
    bad_t = _audio(10, 0).astype([("t", float), ("x", int), ("p", int)])
    bad_t["t"][3] = np.nan
    with pytest.raises(ValueError, match=r"`dataset\[1\]` events: event times `t`"):
        st.to_packed([(_audio(10, 0), 0), (bad_t, 1)], **kw)
    with pytest.raises(ValueError, match="polarities `p`"):
        ev = _camera(10, 0)
        ev["p"][0] = 2
        st.to_frames(ev, sensor_size=(6, 5, 2), dt=100, n_steps=8)
    with pytest.raises(TypeError, match="`dataset` must be indexable"):
        st.to_packed(iter([(_audio(10, 0), 0)]), **kw)
    with pytest.raises(ValueError, match="`dataset` is empty"):
        st.to_events([], **kw)
    with pytest.raises(ValueError, match=r"`dataset\[0\]` must be an `\(events, label\)`"):
        st.to_packed(_Dataset([_audio(10, 0)]), **kw)
    with pytest.raises(ValueError, match=r"`dataset\[0\]` has label"):
        st.to_packed([(_audio(10, 0), np.array([0, 1]))], **kw)
    dataset = [(_audio(200, 0), 0)]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="`max_events`=1 is too small"):
        st.to_events(dataset, max_events=1, **kw)
