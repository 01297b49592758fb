import urllib.error

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnx.data import augment, download


def _sample():
    x = np.zeros((10, 6), np.float32)
    x[2, 1] = x[5, 3] = x[9, 5] = 1
    return jnp.asarray(x)


def test_time_and_channel_shift_move_every_spike_together():
    x = _sample()
    for seed in range(5):
        key = jax.random.key(seed)
        y = np.asarray(jax.jit(augment.time_shift, static_argnums=1)(x, 3, key=key))
        s = int(jax.random.randint(key, (), -3, 4))
        expected = np.zeros_like(np.asarray(x))
        for t, c in zip(*np.nonzero(np.asarray(x))):
            if 0 <= t + s < 10:
                expected[t + s, c] = 1
        np.testing.assert_array_equal(y, expected)
        z = np.asarray(augment.channel_shift(x, 2, key=key))
        s = int(jax.random.randint(key, (), -2, 3))
        assert z.sum() == sum(1 for c in (1, 3, 5) if 0 <= c + s < 6)


def test_channel_jitter_conserves_spikes_inside_and_dropout_rate():
    x = jnp.ones((50, 40))
    y = augment.channel_jitter(x, 0.0, key=jax.random.key(0))
    np.testing.assert_array_equal(y, x)  # zero jitter is the identity
    y = augment.channel_jitter(x, 2.0, key=jax.random.key(1))
    assert 0 < float(y.sum()) <= float(x.sum())
    d = augment.event_dropout(jnp.ones((200, 100)), 0.3, key=jax.random.key(2))
    assert set(np.unique(np.asarray(d))) <= {0.0, 1.0}
    assert float(d.mean()) == pytest.approx(0.7, abs=0.01)
    with pytest.raises(ValueError, match="`p` must be in"):
        augment.event_dropout(x, 1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(T, channels"):
        augment.time_shift(jnp.ones(5), 1, key=jax.random.key(0))


def test_download_refuses_clearly_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match=r"put it at .*shd_train\.h5"):
        download.download("shd_train", tmp_path)
    assert not list(tmp_path.glob("*.gz"))  # no partial file left behind
    (tmp_path / "shd_test.h5").write_bytes(b"present")
    assert download.download("shd_test", tmp_path) == tmp_path / "shd_test.h5"  # no network
    with pytest.raises(KeyError, match="`name` must be one of"):
        download.download("mnist", tmp_path)
    with pytest.raises(RuntimeError, match="unzip Train.zip"):
        download.download("nmnist", tmp_path)
