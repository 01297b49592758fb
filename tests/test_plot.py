import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from snnx import plot  # noqa: E402


def test_raster_places_every_spike():
    s = np.zeros((10, 4))
    s[[1, 3, 3, 9], [0, 1, 2, 3]] = 1
    fig, ax = plot.raster(s)
    offsets = ax.collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(offsets).tolist())) == [(1, 0), (3, 1), (3, 2), (9, 3)]
    assert "4 spikes" in ax.get_title()
    with pytest.raises(ValueError, match=r"`spikes` must have shape \(time, \*neurons\)"):
        plot.raster(np.float32(1.0))
    matplotlib.pyplot.close("all")


def test_membrane_rate_histogram_and_curves(tmp_path):
    v = np.cumsum(np.ones((20, 3)) * 0.1, axis=0)
    fig, ax = plot.membrane(v, threshold=1.0, spikes=(v > 1.0))
    assert len(ax.get_lines()) == 3 * 2 + 1  # traces, spike markers, threshold
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), v[:, 0])
    with pytest.raises(ValueError, match="`neurons`"):
        plot.membrane(v, neurons=[5])
    s = np.zeros((10, 4))
    s[:, 0] = 1
    fig, ax = plot.rate_histogram(s, bins=2)
    counts = [p.get_height() for p in ax.patches]
    assert counts == [3, 1]  # three silent neurons, one at rate 1
    hist = {"loss": [1.0, 0.5], "accuracy": [0.5, 0.8], "eval_loss": [1.1, 0.6],
            "eval_accuracy": [0.4, 0.7]}
    fig, (a1, a2) = plot.training_curves(hist)
    np.testing.assert_allclose(a2.get_lines()[1].get_ydata(), [40, 70])
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="`history`"):
        plot.training_curves({})
    matplotlib.pyplot.close("all")
