"""SHD/SSC loader on tiny files written in the official HDF5 layout."""

import warnings

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import snnx
from snnx.data.shd import bin_events, load_shd

h5py = pytest.importorskip("h5py")


def _write_shd(path, samples, labels):
    """The official layout: vlen float times (s), vlen uint16 units, uint16 labels, extra/."""
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (times, units) in enumerate(samples):
            t[i] = np.asarray(times, np.float32)
            u[i] = np.asarray(units, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(len(labels), np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"zero", b"one"]))


SAMPLES = [
    ([0.0, 0.05, 0.051, 0.5, 0.999, 1.2], [0, 699, 699, 3, 350, 7]),
    ([0.25, 0.75], [10, 11]),
]


def test_exact_binning_and_counts(tmp_path):
    path = tmp_path / "shd_train.h5"
    _write_shd(path, SAMPLES, [3, 19])
    with pytest.warns(UserWarning, match="1 of 8 events fell at or after t_max.*1 shared a bin"):
        xs, ys = load_shd(path, n_steps=10, t_max=1.0, cache_dir=False)
    assert isinstance(xs, snnx.data.PackedSpikes) and xs.shape == (2, 10, 700)
    np.testing.assert_array_equal(ys, [3, 19])
    dense = np.asarray(xs.unpack())
    expected = np.zeros((2, 10, 700))
    for i, (times, units) in enumerate(SAMPLES):
        for t, u in zip(times, units):
            if t < 1.0:
                expected[i, int(t / 0.1), u] = 1  # bins of 0.1 s
    np.testing.assert_array_equal(dense, expected)
    assert load_shd.last_info == (8, 1, 1)


def test_channel_merging_and_dt(tmp_path):
    path = tmp_path / "shd_test.h5"
    _write_shd(path, SAMPLES, [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xs, _ = load_shd(path, dt=0.25, t_max=1.0, channels=70, cache_dir=False)
    assert xs.shape == (2, 4, 70)
    dense = np.asarray(xs.unpack())
    assert dense[0, 0, 0] == 1 and dense[0, 0, 69] == 1 and dense[0, 2, 0] == 1  # 3 // 10 = 0
    assert dense[1, 1, 1] == 1 and dense[1, 3, 1] == 1  # units 10, 11 -> channel 1
    assert dense.sum() == 6


def test_cache_round_trip_and_invalidation(tmp_path):
    path = tmp_path / "ssc_valid.h5"
    _write_shd(path, SAMPLES[1:], [5])
    xs1, ys1 = load_shd(path, n_steps=4, dataset="ssc")
    cache_files = list((tmp_path / ".snnx_cache").glob("*.npz"))
    assert len(cache_files) == 1
    xs2, ys2 = load_shd(path, n_steps=4, dataset="ssc")  # from the cache
    np.testing.assert_array_equal(xs1.bits, xs2.bits)
    np.testing.assert_array_equal(ys1, ys2)
    load_shd(path, n_steps=8, dataset="ssc")  # new parameters, new cache entry
    assert len(list((tmp_path / ".snnx_cache").glob("*.npz"))) == 2


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="zenkelab.org.*gunzip"):
        load_shd(tmp_path / "nope.h5")
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_shd(bad, cache_dir=False)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("labels", data=np.zeros(2))
    with pytest.raises(ValueError, match="no dataset `spikes/times`"):
        load_shd(other, cache_dir=False)
    path = tmp_path / "ok.h5"
    _write_shd(path, SAMPLES, [0, 1])
    with pytest.raises(ValueError, match="`n_steps` must be a positive int"):
        load_shd(path, n_steps=0, cache_dir=False)
    with pytest.raises(ValueError, match="`dt` must be a positive"):
        load_shd(path, dt=-0.1, cache_dir=False)
    with pytest.raises(ValueError, match="`channels` must divide 700"):
        load_shd(path, channels=300, cache_dir=False)
    with pytest.raises(ValueError, match="channel ids outside"):
        bin_events([np.array([0.1])], [np.array([700])], n_steps=2, t_max=1.0)


def test_end_to_end_training_on_synthetic_shd_file(tmp_path):
    # Two classes: class 0 fires low channels early, class 1 high channels late.
    rng = np.random.default_rng(0)
    samples, labels = [], []
    for i in range(64):
        c = i % 2
        n = 200
        times = rng.uniform(0.0, 0.5, n) + 0.45 * c
        units = rng.integers(0, 350, n) + 350 * c
        order = np.argsort(times)
        samples.append((times[order], units[order]))
        labels.append(c)
    path = tmp_path / "shd_train.h5"
    _write_shd(path, samples, labels)
    with pytest.warns(UserWarning, match="merged into one spike"):
        xs, ys = load_shd(path, n_steps=20, channels=70, cache_dir=False)
    k1, k2 = jax.random.split(jax.random.key(0))
    model = snnx.Sequential([
        eqx.nn.Linear(70, 32, key=k1), snnx.LIF(tau=5.0),
        eqx.nn.Linear(32, 2, key=k2), snnx.LI(tau=5.0),
    ])
    _, history = snnx.fit(model, snnx.losses.ce_max_membrane, optax.adam(1e-2), (xs, ys),
                          epochs=4, batch_size=16, key=jax.random.key(1), progress=False)
    losses = history["loss"]
    assert losses[-1] < losses[0]
