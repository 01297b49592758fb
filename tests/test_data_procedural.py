import numpy as np
import pytest

from snnx.data.procedural import randman, yin_yang


def test_yin_yang_balanced_deterministic_and_geometric():
    x, y = yin_yang(300, seed=3)
    assert x.shape == (300, 4) and np.bincount(y).tolist() == [100, 100, 100]
    x2, y2 = yin_yang(300, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, yin_yang(300, seed=4)[0])
    np.testing.assert_allclose(x[:, 2:], 1 - x[:, :2], atol=1e-6)
    px, py = x[:, 0], x[:, 1]
    assert np.all(np.hypot(px - 0.5, py - 0.5) <= 0.5 + 1e-6)  # inside the big circle
    # Dots: within 0.1 of (0.25, 0.5) or (0.75, 0.5); classes are symmetric under a 180°
    # rotation about the centre, which swaps yin and yang (the figure's defining symmetry).
    d = np.minimum(np.hypot(px - 0.25, py - 0.5), np.hypot(px - 0.75, py - 0.5))
    assert np.all(d[y == 2] <= 0.1 + 1e-6) and np.all(d[y != 2] > 0.1 - 1e-6)
    from snnx.data.procedural import _yin_yang_class

    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (2000, 2))
    p = p[np.hypot(p[:, 0] - 0.5, p[:, 1] - 0.5) < 0.5]
    c, c_rot = _yin_yang_class(p[:, 0], p[:, 1]), _yin_yang_class(1 - p[:, 0], 1 - p[:, 1])
    keep = (c != 2) & (c_rot != 2)
    assert np.mean(c[keep] != c_rot[keep]) > 0.97
    # Yin and yang cover equal areas of the disc.
    frac_yin = np.mean(c[c != 2] == 0)
    assert frac_yin == pytest.approx(0.5, abs=0.05)


def test_randman_one_spike_per_unit_and_deterministic():
    x, y = randman(3, 40, n_units=10, n_steps=25, seed=1)
    assert x.shape == (120, 25, 10) and np.bincount(y).tolist() == [40, 40, 40]
    np.testing.assert_array_equal(x.sum(axis=1), 1.0)  # exactly one spike per channel
    np.testing.assert_array_equal(x, randman(3, 40, n_units=10, n_steps=25, seed=1)[0])
    # Classes are distinguishable: mean latencies differ between classes.
    lat = x.argmax(axis=1)
    assert np.abs(lat[y == 0].mean(0) - lat[y == 1].mean(0)).max() > 2


def test_procedural_bad_arguments():
    with pytest.raises(ValueError, match="`n` must be an int >= 3"):
        yin_yang(2)
    with pytest.raises(ValueError, match="`n_units` must be a positive int"):
        randman(n_units=0)
