"""N-MNIST decoding on real 40-bit event records written by the test."""

import numpy as np
import pytest

from snnx.data.nmnist import bin_frames, load_nmnist, read_events


def _encode(events):
    """The published record: x, y, [p:1 | t 22..16], t 15..8, t 7..0."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


EVENTS = [(0, 0, 1, 0), (33, 5, 0, 1234), (7, 33, 1, 99_999), (12, 13, 0, 150_000),
          (12, 13, 0, 150_001), (3, 4, 1, 8_388_607)]  # the last: the largest 23-bit time


def test_decode_exact(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode(EVENTS))
    ev = read_events(path)
    np.testing.assert_array_equal(ev["x"], [e[0] for e in EVENTS])
    np.testing.assert_array_equal(ev["y"], [e[1] for e in EVENTS])
    np.testing.assert_array_equal(ev["p"], [e[2] for e in EVENTS])
    np.testing.assert_array_equal(ev["t"], [e[3] for e in EVENTS])


def test_frames_and_saccade_selection(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(_encode(EVENTS))
    frames, (n, outside, merged) = bin_frames(read_events(path), n_steps=3)
    assert frames.shape == (3, 2, 34, 34)
    assert frames[0, 1, 0, 0] and frames[0, 0, 5, 33] and frames[0, 1, 33, 7]
    assert frames[1, 0, 13, 12]  # two events in one pixel-bin: merged
    assert (n, outside, merged) == (6, 1, 1) and frames.sum() == 4
    second, (_, outside2, _) = bin_frames(read_events(path), n_steps=2, saccades=(1,))
    assert second.sum() == 1 and second[1, 0, 13, 12] and outside2 == 4


def test_folder_layout_and_errors(tmp_path):
    for split in ("Train", "Test"):
        for digit in (3, 7):
            d = tmp_path / split / str(digit)
            d.mkdir(parents=True)
            (d / "00001.bin").write_bytes(_encode([(digit, digit, 1, 1000 * digit)]))
    xs, ys = load_nmnist(tmp_path, split="test", n_steps=5)
    assert xs.shape == (2, 5, 2, 34, 34)
    np.testing.assert_array_equal(ys, [3, 7])
    dense = np.asarray(xs.unpack())
    assert dense[0, 0, 1, 3, 3] == 1 and dense.sum() == 2
    with pytest.raises(FileNotFoundError, match="Train.zip"):
        load_nmnist(tmp_path / "missing", split="train")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(_encode(EVENTS)[:-2])
    with pytest.raises(ValueError, match="not a multiple of 5"):
        read_events(bad)
    with pytest.raises(ValueError, match="`split`"):
        load_nmnist(tmp_path, split="valid")
    with pytest.raises(ValueError, match="`saccades`"):
        bin_frames(read_events(tmp_path / "Test" / "3" / "00001.bin"), n_steps=2,
                   saccades=(0, 2))
