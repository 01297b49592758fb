"""Checkpoints: damaged files, the path checked before training, resuming another run.

Every bad file is a real snnx checkpoint, then damaged; each test asserts the error type (or
warning) and that the message names the argument.
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

# the module-scoped fixture is expensive: keep this file on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("checkpoint")

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
