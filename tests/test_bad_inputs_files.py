"""Bad files and bad resumes: checkpoints, `.nir` files, SHD/SSC files and caches, N-MNIST.

Every bad file is written in the real format (snnx checkpoints, HDF5 through h5py and
`nir.write`, `.npz` caches, 40-bit N-MNIST events) and then damaged; each test asserts the
error type (or warning) and that the message names the argument.
"""

import json
import warnings

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import snnx
from snnx import losses, train
from snnx.train import _checkpoint

N, T, D, C = 16, 4, 4, 2
_OPT = optax.adam(5e-2)  # one object: `fit` caches its compiled programs per optimizer


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % C).astype(np.int32)
    x = (rng.random((n, T, D)) < 0.3).astype(np.float32)
    return x, y


def _model():
    k1, k2 = jax.random.split(jax.random.key(0))
    return snnx.Sequential([eqx.nn.Linear(D, 6, key=k1), snnx.LIF(tau=3.0, v_threshold=0.5),
                            eqx.nn.Linear(6, C, key=k2), snnx.LI(tau=3.0)])


def _fit(data=None, *, opt=_OPT, key=1, loss=losses.ce_max_membrane, **kw):
    kw.setdefault("epochs", 1)
    kw.setdefault("batch_size", 8)
    return train.fit(_model(), loss, opt, _data() if data is None else data,
                     key=jax.random.key(key), progress=False, **kw)


def _never_called(outputs, labels):
    raise AssertionError("training started before the bad argument was found")


def _opt_state():
    return _OPT.init(eqx.filter(_model(), snnx.trainable_spec(_model())))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One checkpoint after one epoch, and its bytes."""
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.eqx"
    _fit(checkpoint=path)
    return path, path.read_bytes()


def _copy(saved, tmp_path, data=None):
    path = tmp_path / "c.eqx"
    path.write_bytes(saved[1] if data is None else data)
    return path


def _load(path):
    return train.load_checkpoint(path, _model(), _opt_state())


# --- checkpoints: damaged files --------------------------------------------------------


def test_checkpoint_truncated(saved, tmp_path):
    path = _copy(saved, tmp_path, saved[1][: len(saved[1]) - 100])
    with pytest.raises(ValueError, match="`path` .* is truncated"):
        _load(path)
    with pytest.raises(ValueError, match="`checkpoint` .* is truncated"):
        _fit(checkpoint=path, resume=True, epochs=2, loss=_never_called)
    header_only = _copy(saved, tmp_path, saved[1][:60])
    with pytest.raises(ValueError, match="`path` .* truncated: its header ends"):
        _load(header_only)


def test_checkpoint_bytes_appended(saved, tmp_path):
    with pytest.raises(ValueError, match="`path` .* bytes appended"):
        _load(_copy(saved, tmp_path, saved[1] + b"\0" * 8))


def test_checkpoint_flipped_payload_bytes(saved, tmp_path):
    data = bytearray(saved[1])
    for i in range(len(data) - 40, len(data) - 30):
        data[i] ^= 0xFF
    with pytest.raises(ValueError, match="`path` .* checksum does not match"):
        _load(_copy(saved, tmp_path, bytes(data)))


def _with_header(saved, tmp_path, edit):
    magic, header, payload = saved[1].split(b"\n", 2)
    return _copy(saved, tmp_path, magic + b"\n" + edit(header) + b"\n" + payload)


def test_checkpoint_damaged_header(saved, tmp_path):
    not_json = _with_header(saved, tmp_path, lambda h: h[:10] + b"#" + h[11:])
    with pytest.raises(ValueError, match="`path` .* damaged header \\(not valid JSON"):
        _load(not_json)

    def drop_epoch(h):
        d = json.loads(h)
        del d["epoch"]
        return json.dumps(d).encode()

    with pytest.raises(ValueError, match="`path` .* damaged header: missing fields \\['epoch'\\]"):
        _load(_with_header(saved, tmp_path, drop_epoch))
    with pytest.raises(ValueError, match="`path` .* damaged header"):
        _load(_with_header(saved, tmp_path, lambda h: b"[1, 2]"))


def test_checkpoint_header_value_changed_is_caught_by_checksum(saved, tmp_path):
    path = _with_header(saved, tmp_path, lambda h: h.replace(b'"epoch": 1', b'"epoch": 7'))
    with pytest.raises(ValueError, match="`path` .* checksum does not match"):
        _load(path)


def test_checkpoint_v1_file_loads_with_warning(tmp_path):
    model, state = _model(), _opt_state()
    path = tmp_path / "old.eqx"
    path.write_bytes(b"")
    train.save_checkpoint(path, model, state, 3, {"loss": [1.0, 0.5, 0.25]})
    _, header, payload = path.read_bytes().split(b"\n", 2)
    old = json.loads(header)
    old = {k: old[k] for k in ("epoch", "leaves", "history")}
    path.write_bytes(b"snnx-checkpoint v1\n" + json.dumps(old).encode() + b"\n" + payload)
    with pytest.warns(UserWarning, match="`path` .* older snnx .* no checksum"):
        m, _, epoch, hist = _load(path)
    assert epoch == 3 and hist["loss"] == [1.0, 0.5, 0.25]
    assert eqx.tree_equal(m, model)
    path.write_bytes(b"snnx-checkpoint v1\n" + json.dumps(old).encode() + b"\n" + payload[:-9])
    with pytest.warns(UserWarning, match="older snnx"), pytest.raises(
            ValueError, match="`path` .* truncated or damaged: reading its arrays failed"):
        _load(path)


def test_save_checkpoint_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`epoch` must be a non-negative int"):
        train.save_checkpoint(tmp_path / "c", _model(), None, -1)
    with pytest.raises(TypeError, match="`history` and `run` must be JSON-serialisable"):
        train.save_checkpoint(tmp_path / "c", _model(), None, 1, {"loss": [object()]})


# --- checkpoints: the path, checked before training -------------------------------------


def test_checkpoint_path_checked_before_training(tmp_path):
    with pytest.raises(ValueError, match="`checkpoint` .* is a directory"):
        _fit(checkpoint=tmp_path, loss=_never_called)
    with pytest.raises(FileNotFoundError, match="`checkpoint` .* does not exist; create it"):
        _fit(checkpoint=tmp_path / "no" / "c.eqx", loss=_never_called)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="`checkpoint` .* is a file, not a folder"):
        _fit(checkpoint=tmp_path / "file" / "c.eqx", loss=_never_called)
    with pytest.raises(TypeError, match="`checkpoint` must be a file path"):
        _fit(checkpoint=3, loss=_never_called)
    with pytest.raises(ValueError, match="`resume` must be False, True or 'force'"):
        _fit(checkpoint=tmp_path / "c.eqx", resume="yes", loss=_never_called)
    with pytest.raises(ValueError, match="`resume=True` needs a `checkpoint`"):
        _fit(resume=True, loss=_never_called)


# --- checkpoints: resuming another run --------------------------------------------------


@pytest.mark.parametrize(
    "change, what",
    [
        ({"batch_size": 4}, "`batch_size`: 4 now, 8 saved"),
        ({"last_batch": "pad"}, "`last_batch`"),
        ({"data": _data(seed=5)}, "the training data"),
        ({"data": _data(n=12)}, "the number of training samples: 12 now, 16 saved"),
        ({"opt": optax.adam(5e-3)}, "the optimizer"),
        ({"opt": optax.adam(5e-2, b1=0.5)}, "the optimizer"),
        ({"key": 2}, "`key`"),
    ],
)
def test_resume_of_another_run_is_refused(saved, tmp_path, change, what):
    path = _copy(saved, tmp_path)
    with pytest.raises(ValueError, match="`resume=True`, but `checkpoint` .* different "
                       "training run") as err:
        _fit(checkpoint=path, resume=True, epochs=2, loss=_never_called, **change)
    assert what in str(err.value) and "resume='force'" in str(err.value)


def test_resume_force_accepts_an_intended_change(saved, tmp_path):
    path = _copy(saved, tmp_path)
    model, hist = _fit(checkpoint=path, resume="force", epochs=2, batch_size=4)
    assert len(hist["loss"]) == 2
    # the new record is saved: a plain resume with the new settings now continues
    _, hist = _fit(checkpoint=path, resume=True, epochs=3, batch_size=4)
    assert len(hist["loss"]) == 3


def test_resume_same_run_continues(saved, tmp_path):
    path = _copy(saved, tmp_path)
    packed = (snnx.data.PackedSpikes(_data()[0].astype(np.uint8)), _data()[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, hist = _fit(packed, checkpoint=path, resume=True, epochs=2)
    assert len(hist["loss"]) == 2


def test_optimizer_probe_tells_learning_rates_apart():
    m = _model()
    a = _checkpoint._probe_updates(optax.adam(1e-3), m)
    b = _checkpoint._probe_updates(optax.adam(1e-2), m)
    assert a is not None and not np.allclose(a, b)
    assert a == _checkpoint._probe_updates(optax.adam(1e-3), m)
    s1 = _checkpoint._probe_updates(optax.sgd(1e-2, momentum=0.9), m)
    s2 = _checkpoint._probe_updates(optax.sgd(1e-2, momentum=0.5), m)
    assert not np.allclose(s1, s2)


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
