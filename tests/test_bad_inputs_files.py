"""Bad files: `.nir` files, SHD/SSC files and caches, N-MNIST, `snnx.data.download`.

Every bad file is written in the real format (HDF5 through h5py and `nir.write`, `.npz`
caches, 40-bit N-MNIST events) and then damaged; each test asserts the error type (or
warning) and that the message names the argument. Checkpoints: tests/test_checkpoint.py.
"""

import warnings

import equinox as eqx
import numpy as np
import pytest

import snnx

# --- .nir files ------------------------------------------------------------------------

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")


def _lif(n=3, tau=0.01):
    return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n),
                   v_threshold=np.ones(n))


@pytest.fixture
def nir_file(tmp_path):
    path = tmp_path / "good.nir"
    nir.write(path, nir.NIRGraph.from_list(
        nir.Affine(np.ones((3, 2), np.float32), np.zeros(3, np.float32)), _lif()))
    return path


def _from_nir(path):
    return snnx.from_nir(path, dt=1e-3)


def test_nir_file_not_hdf5_or_truncated(tmp_path, nir_file):
    data = nir_file.read_bytes()
    for name, content, why in [("text.nir", b"hello", "not an HDF5 file"),
                               ("empty.nir", b"", "not an HDF5 file"),
                               ("cut.nir", data[: len(data) // 2], "truncated")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"`graph_or_path` .* not a readable NIR file "
                                             f"\\({why}"):
            _from_nir(tmp_path / name)
    with pytest.raises(IsADirectoryError, match="`graph_or_path` .* is a directory"):
        _from_nir(tmp_path)


def test_nir_file_hdf5_but_not_nir(tmp_path):
    path = tmp_path / "shd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=[1, 2])
    with pytest.raises(ValueError, match="`graph_or_path` .* not a NIR file: it has no `node`"):
        _from_nir(path)


def _damage(nir_file, edit):
    with h5py.File(nir_file, "a") as f:
        edit(f)
    return nir_file


def test_nir_file_damaged_nodes(nir_file, tmp_path):
    cases = [
        (lambda f: f["node/nodes/lif"].__delitem__("tau"), "node 'lif' of type 'LIF' .*tau"),
        (lambda f: f["node/nodes/lif"].__delitem__("type"), "node 'lif' has no `type`"),
        (lambda f: f["node"].__delitem__("edges"), "has no \\['edges'\\]"),
        (lambda f: (f["node/nodes/lif"].__delitem__("type"),
                    f["node/nodes/lif"].create_dataset("type", data=b"Bogus")),
         "node 'lif' of type 'Bogus' cannot be read \\(not a NIR node type"),
        (lambda f: f["node/nodes/lif/tau"].__setitem__(..., np.full(3, np.nan)),
         "node 'lif' has NaN in `tau`"),
    ]
    good = nir_file.read_bytes()
    for edit, what in cases:
        nir_file.write_bytes(good)
        with pytest.raises(ValueError, match=f"`graph_or_path` .*{what}"):
            _from_nir(_damage(nir_file, edit))


def test_nir_file_with_a_single_node_imports(tmp_path):
    path = tmp_path / "one.nir"
    nir.write(path, _lif())
    model = _from_nir(path)  # as for a node in memory: a Sequential of one (nir.read fails)
    assert eqx.tree_equal(model, snnx.from_nir(_lif(), dt=1e-3))
    assert isinstance(model.layers[0], snnx.LIF)


# --- SHD/SSC files and their cache -----------------------------------------------------


def _write_shd(path, samples, labels, *, unit_dtype=np.uint16, label_dtype=np.uint16):
    """The official layout: vlen float32 times (s), vlen uint16 units, uint16 labels."""
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(unit_dtype))
        for i, (times, units) in enumerate(samples):
            t[i] = np.asarray(times, np.float32)
            u[i] = np.asarray(units, unit_dtype)
        f.create_dataset("labels", data=np.asarray(labels, label_dtype))
    return path


_SAMPLES = [([0.0, 0.3, 0.6], [0, 5, 699]), ([0.25, 0.75], [10, 11])]


def test_shd_labels_outside_the_classes(tmp_path):
    path = _write_shd(tmp_path / "shd.h5", _SAMPLES, [3, 20])
    with pytest.raises(ValueError, match="`path` .* labels must lie in \\[0, 20\\) for "
                                         "`dataset='shd'`.*pass `dataset='ssc'`"):
        snnx.data.load_shd(path, n_steps=4, cache_dir=False)
    snnx.data.load_shd(path, n_steps=4, cache_dir=False, dataset="ssc")  # 35 classes
    path = _write_shd(tmp_path / "ssc.h5", _SAMPLES, [3, 35])
    with pytest.raises(ValueError, match="`path` .* labels must lie in \\[0, 35\\)"):
        snnx.data.load_shd(path, n_steps=4, cache_dir=False, dataset="ssc")
    path = _write_shd(tmp_path / "neg.h5", _SAMPLES, [-1, 2], label_dtype=np.int16)
    with pytest.raises(ValueError, match="`path` .* labels must lie in"):
        snnx.data.load_shd(path, n_steps=4, cache_dir=False)


def test_shd_non_integer_units_or_labels(tmp_path):
    path = _write_shd(tmp_path / "f.h5", _SAMPLES, [1.5, 2.0], label_dtype=np.float32)
    with pytest.raises(ValueError, match="`path` .* `labels` holds float32 values"):
        snnx.data.load_shd(path, n_steps=4, cache_dir=False)
    path = _write_shd(tmp_path / "u.h5", _SAMPLES, [1, 2], unit_dtype=np.float32)
    with pytest.raises(ValueError, match="`path` .* `spikes/units` holds float32 values"):
        snnx.data.load_shd(path, n_steps=4, cache_dir=False)


@pytest.mark.parametrize("bad", [np.nan, -0.1, np.inf])
def test_shd_nan_negative_or_infinite_spike_times(tmp_path, bad):
    samples = [([0.0, bad, 0.6], [0, 5, 699]), _SAMPLES[1]]
    path = _write_shd(tmp_path / "shd.h5", samples, [1, 2])
    with pytest.raises(ValueError, match="`path` .* sample 0 has 1 spike times that are NaN, "
                                         "infinite or negative"):
        snnx.data.load_shd(path, n_steps=4, cache_dir=False)
    with pytest.raises(ValueError, match="`times`/`units`: sample 0 has 1 spike times"):
        snnx.data.bin_events([np.array(t) for t, _ in samples],
                             [np.array(u) for _, u in samples], n_steps=4, t_max=1.0)


def test_shd_bin_events_bad_units():
    with pytest.raises(ValueError, match="`times`/`units`: sample 0 has channel ids outside"):
        snnx.data.bin_events([np.array([0.1])], [np.array([700])], n_steps=4, t_max=1.0)
    with pytest.raises(ValueError, match="`units` of sample 0 must be integer channel ids"):
        snnx.data.bin_events([np.array([0.1])], [np.array([3.7])], n_steps=4, t_max=1.0)
    with pytest.raises(ValueError, match="`times` has 1 samples but `units` 2"):
        snnx.data.bin_events([np.array([0.1])], [np.array([1]), np.array([2])], n_steps=4,
                             t_max=1.0)


def _cache_of(path):
    files = list((path.parent / ".snnx_cache").glob("*.npz"))
    assert len(files) == 1
    return files[0]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing key", "wrong shape"])
def test_shd_damaged_cache_is_rebuilt(tmp_path, damage):
    path = _write_shd(tmp_path / "shd.h5", _SAMPLES, [1, 2])
    xs, ys = snnx.data.load_shd(path, n_steps=4)
    cache = _cache_of(path)
    data = cache.read_bytes()
    if damage == "truncated":
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        cache.write_bytes(b"\0" * 64)
    else:
        with np.load(cache) as z:
            arrays = dict(z)
        if damage == "missing key":
            del arrays["labels"]
        else:
            arrays["bits"] = arrays["bits"][:, :, :5]
        np.savez(cache, **arrays)
    with pytest.warns(UserWarning, match="the cache .* is damaged .* rebuilding it"):
        xs2, ys2 = snnx.data.load_shd(path, n_steps=4)
    np.testing.assert_array_equal(np.asarray(xs2.unpack()), np.asarray(xs.unpack()))
    np.testing.assert_array_equal(ys2, ys)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snnx.data.load_shd(path, n_steps=4)  # rebuilt: read from the cache, silently


def test_shd_unwritable_cache_dir_loads_without_cache(tmp_path):
    path = _write_shd(tmp_path / "shd.h5", _SAMPLES, [1, 2])
    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning, match="could not write the cache .* `cache_dir`"):
        xs, ys = snnx.data.load_shd(path, n_steps=4, cache_dir=tmp_path / "blocked")
    assert xs.shape == (2, 4, 700)


def test_shd_wrong_file_types(tmp_path, nir_file):
    with pytest.raises(ValueError, match="`path` .* has no dataset `spikes/times`: not an SHD"):
        snnx.data.load_shd(nir_file, n_steps=4, cache_dir=False)  # HDF5, but a NIR graph
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.zeros(3))
    with pytest.raises(ValueError, match="`path` .* is not a readable HDF5 file"):
        snnx.data.load_shd(npz, n_steps=4, cache_dir=False)
    with pytest.raises(ValueError, match="`path` .* is not a readable HDF5 file"):
        snnx.data.load_shd(tmp_path, n_steps=4, cache_dir=False)


# --- snnx.data.download, as the README calls it -----------------------------------------


def test_download_is_callable_as_the_readme_says(tmp_path):
    (tmp_path / "shd_test.h5").write_bytes(b"")  # already there: no network
    assert snnx.data.download("shd_test", tmp_path) == tmp_path / "shd_test.h5"
    assert snnx.data.download.download("shd_test", tmp_path) == tmp_path / "shd_test.h5"
    assert "shd_train" in snnx.data.download.SOURCES
    with pytest.raises(KeyError, match="`name` must be one of"):
        snnx.data.download("mnist", tmp_path)


# --- N-MNIST event files ------------------------------------------------------------------


def _nmnist(root, digits=range(10), events=((1, 2, 1, 10), (3, 4, 0, 150_000))):
    rec = bytearray()
    for x, y, p, t in events:
        rec += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    for d in digits:
        (root / "Train" / str(d)).mkdir(parents=True, exist_ok=True)
        (root / "Train" / str(d) / "00001.bin").write_bytes(bytes(rec))
    return root


def test_nmnist_bad_event_files(tmp_path):
    read = snnx.data.read_events
    with pytest.raises(IsADirectoryError, match="`path` .* is a directory"):
        read(tmp_path)
    (tmp_path / "cut.bin").write_bytes(b"\1" * 7)
    with pytest.raises(ValueError, match="`path` .* not a multiple of 5"):
        read(tmp_path / "cut.bin")
    (tmp_path / "text.bin").write_bytes(b"hello worl")  # a text file: 10 bytes, x = 'h'
    with pytest.raises(ValueError, match="`path` .* outside the 34x34 sensor"):
        read(tmp_path / "text.bin")


def test_nmnist_incomplete_folder_and_empty_recordings(tmp_path):
    root = _nmnist(tmp_path, digits=range(5))
    with pytest.warns(UserWarning, match="`root` .* no `.bin` files for digits \\[5, 6, 7, 8"):
        xs, ys = snnx.data.load_nmnist(root, n_steps=3)
    assert set(ys.tolist()) == {0, 1, 2, 3, 4}
    root = _nmnist(tmp_path / "full")
    (root / "Train" / "3" / "00002.bin").write_bytes(b"")
    with pytest.warns(UserWarning, match="1 recordings hold no events .*'00002.bin'"):
        snnx.data.load_nmnist(root, n_steps=3)


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_nmnist_bad_limit(tmp_path, limit):
    with pytest.raises(ValueError, match="`limit` must be None or a positive int"):
        snnx.data.load_nmnist(_nmnist(tmp_path), n_steps=3, limit=limit)
