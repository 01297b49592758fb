import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from snnx import demo  # noqa: E402


def test_digits_spikes_are_rate_codes():
    (s_tr, y_tr), (s_te, y_te) = demo.load_digits_spikes(10, copies=2)
    assert s_tr.shape == (2 * 1437, 10, 64) and s_te.shape == (360, 10, 64)
    assert set(np.unique(s_tr)) <= {0, 1} and y_tr.shape == (2 * 1437,)
    # copies are the same images with different spike trains
    np.testing.assert_array_equal(y_tr[:1437], y_tr[1437:])
    assert not np.array_equal(s_tr[:1437], s_tr[1437:])
    from sklearn.datasets import load_digits

    # Bernoulli rate coding: the mean spike rate matches the mean intensity (pixel / 16)
    assert s_tr.mean() == pytest.approx(load_digits().data.mean() / 16, abs=0.01)


def test_demo_runs_and_writes_pngs(tmp_path, capsys):
    acc = demo.main(["--out", str(tmp_path), "--epochs", "1", "--copies", "1",
                     "--no-progress"])
    assert acc > 0.3  # chance is 0.1; the full demo reaches > 0.95
    out = capsys.readouterr().out
    assert "final test accuracy" in out
    for name in ("digits_raster.png", "digits_curves.png"):
        assert (tmp_path / name).stat().st_size > 1000
