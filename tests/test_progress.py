"""Progress of long host loops: the data loaders, packing, the tonic bridge and
`snnx.ode.simulate_batch` tell a meter (the `progress=` option, as in `snnx.fit`)."""

import jax.numpy as jnp
import numpy as np
import pytest

import snnx
from snnx.train import AbstractLoopMeter, NoProgressMeter, TqdmProgressMeter
from snnx.train._progress import as_loop_meter


class _Meter(AbstractLoopMeter):
    """A user's loop meter: records what it is told."""

    def __init__(self):
        self.calls = []

    def loop_start(self, total, desc):
        self.calls.append(("start", total))

    def loop_update(self, n):
        self.calls.append(n)

    def loop_end(self):
        self.calls.append("end")

    def updates(self):
        return [c for c in self.calls if isinstance(c, int)]


def _assert_one_loop(meter, total, updates):
    assert meter.calls[0] == ("start", total) and meter.calls[-1] == "end"
    assert meter.calls.count("end") == 1
    assert meter.updates() == updates and sum(updates) == total


def test_as_loop_meter_follows_fit():
    assert isinstance(as_loop_meter(False), NoProgressMeter)
    assert isinstance(as_loop_meter(None), NoProgressMeter)
    meter = _Meter()
    assert as_loop_meter(meter) is meter
    for bad in (1, "auto", object()):
        with pytest.raises(TypeError, match="`progress` must be True, False or an"):
            as_loop_meter(bad)
    # the built-in meters serve fit and the loops alike
    assert isinstance(NoProgressMeter(), snnx.train.AbstractProgressMeter)
    pytest.importorskip("tqdm")
    assert isinstance(as_loop_meter(True), TqdmProgressMeter)


def test_shd_binning_reports_every_sample(tmp_path, capsys):
    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0, 0.9, 20)) for _ in range(7)]
    units = [rng.integers(0, 700, 20) for _ in range(7)]
    meter = _Meter()
    quiet, _ = snnx.data.bin_events(times, units, n_steps=50, t_max=1.0)
    shown, _ = snnx.data.bin_events(times, units, n_steps=50, t_max=1.0, progress=meter)
    _assert_one_loop(meter, 7, [1] * 7)
    np.testing.assert_array_equal(quiet, shown)
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "shd_train.h5"
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (7,), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (7,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(7):
            t[i], u[i] = times[i].astype(np.float32), units[i].astype(np.uint16)
        f.create_dataset("labels", data=np.arange(7, dtype=np.uint16))
    meter = _Meter()
    snnx.data.load_shd(path, n_steps=50, cache_dir=tmp_path / "c", progress=meter)
    _assert_one_loop(meter, 7, [1] * 7)
    meter = _Meter()
    snnx.data.load_shd(path, n_steps=50, cache_dir=tmp_path / "c", progress=meter)
    assert meter.calls == []  # read from the cache: no binning loop
    pytest.importorskip("tqdm")
    snnx.data.load_shd(path, n_steps=50, cache_dir=False, progress=True)
    assert "binning events" in capsys.readouterr().err


def _nmnist_event(x, y, p, t):
    return bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])


def test_nmnist_reports_every_file(tmp_path):
    for digit in range(10):
        d = tmp_path / "Train" / str(digit)
        d.mkdir(parents=True)
        for k in range(2):
            (d / f"{k}.bin").write_bytes(_nmnist_event(digit, k, 1, 1000 * digit + k))
    meter = _Meter()
    xs, ys = snnx.data.load_nmnist(tmp_path, n_steps=5, progress=meter)
    _assert_one_loop(meter, 20, [1] * 20)
    meter = _Meter()
    snnx.data.load_nmnist(tmp_path, n_steps=5, limit=1, progress=meter)
    _assert_one_loop(meter, 10, [1] * 10)


def test_packing_reports_chunks_of_samples():
    x = np.random.default_rng(0).random((2500, 11, 3)) < 0.2
    meter = _Meter()
    bits = snnx.data.pack_spikes(x, progress=meter)
    _assert_one_loop(meter, 2500, [1024, 1024, 452])
    np.testing.assert_array_equal(bits, np.packbits(x, axis=1))
    meter = _Meter()
    packed = snnx.data.PackedSpikes(x[:30], progress=meter)
    _assert_one_loop(meter, 30, [30])
    np.testing.assert_array_equal(np.asarray(packed.unpack()), x[:30])


def test_tonic_bridge_reports_every_sample():
    dtype = np.dtype([("t", int), ("x", int), ("p", int)])
    dataset = []
    for i in range(5):
        ev = np.zeros(3, dtype)
        ev["t"], ev["x"] = [10 * i, 200, 400], [0, 1, 2]
        dataset.append((ev, i))
    for convert in (snnx.data.tonic.to_packed, snnx.data.tonic.to_events):
        meter = _Meter()
        convert(dataset, sensor_size=(3, 1, 1), dt=100, n_steps=5, progress=meter)
        _assert_one_loop(meter, 5, [1] * 5)


def test_the_loop_ends_when_a_sample_is_bad():
    meter = _Meter()
    with pytest.raises(ValueError, match=r"`dataset\[1\]`"):
        snnx.data.tonic.to_packed([(np.zeros(2, [("t", int), ("x", int), ("p", int)]), 0),
                                   ("not events", 1)], sensor_size=(3, 1, 1), dt=1,
                                  n_steps=2, progress=meter)
    assert meter.calls == [("start", 2), 1, "end"]


def test_simulate_batch_reports_chunks_and_equals_simulate():
    lif = snnx.LIF(tau=10.0)
    currents = jnp.array([[1.3], [1.5], [2.0], [0.5], [1.8], [3.0], [0.9]])
    kw = dict(shape=(1,), t1=30.0, max_spikes=4)
    meter = _Meter()
    # I = 3 spikes every 10 ln 1.5 = 4.05: 7 spikes in t1 = 30, over the bound of 4
    with pytest.warns(UserWarning, match="1 of 7 simulations had more spikes"):
        sols = snnx.ode.simulate_batch(lif, currents, batch_size=2, progress=meter, **kw)
    _assert_one_loop(meter, 7, [2, 2, 2, 1])
    assert sols.spike_times.shape == (7, 1, 4) and sols.spike_counts.shape == (7, 1)
    assert sols.overflow.tolist() == [False] * 5 + [True, False]
    assert int(sols.n_dropped[5]) == 3
    for i in (1, 6):  # one inside a chunk, one in the padded last chunk
        one = snnx.ode.simulate(lif, currents[i], **kw)
        np.testing.assert_allclose(sols.spike_times[i], one.spike_times, rtol=1e-5)
    # closed form of the LIF's spikes: every tau * ln(I / (I - 1))
    spiking = np.asarray(currents[[0, 1, 2, 4], 0])
    period = dict(zip((0, 1, 2, 4), 10.0 * np.log(spiking / (spiking - 1))))
    for i in (0, 1, 2, 4):
        n = int(30.0 // period[i])
        np.testing.assert_allclose(sols.spike_times[i, 0, :n], period[i] * np.arange(1, n + 1),
                                   rtol=1e-4)
        assert int(sols.spike_counts[i, 0]) == n
    assert np.isinf(np.asarray(sols.spike_times)[[3, 6]]).all()  # below threshold: never spikes


def test_simulate_batch_bad_inputs():
    lif = snnx.LIF(tau=10.0)
    kw = dict(shape=(1,), t1=10.0, max_spikes=2)
    with pytest.raises(ValueError, match="at least one of `current`"):
        snnx.ode.simulate_batch(lif, **kw)
    with pytest.raises(ValueError, match="`current` must carry a leading sample axis"):
        snnx.ode.simulate_batch(lif, 1.5, **kw)
    with pytest.raises(ValueError, match="different numbers of samples"):
        snnx.ode.simulate_batch(lif, jnp.ones((3, 1)), lif.init_state((2, 1)), **kw)
    with pytest.raises(TypeError, match="`current` of `simulate_batch` must be an array"):
        snnx.ode.simulate_batch(lif, lambda t: 1.0, **kw)
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        snnx.ode.simulate_batch(lif, jnp.ones((3, 1)), batch_size=0, **kw)

    class Discrete(snnx.AbstractNeuron):  # no vector_field / spike_condition / reset
        def init_state(self, shape, dtype=jnp.float32):
            return jnp.zeros(shape, dtype)

        def __call__(self, x, v, *, key=None):
            return x, v

    with pytest.raises(TypeError, match="continuous-time form"):
        snnx.ode.simulate_batch(Discrete(), jnp.ones((3, 1)), **kw)
