"""Procedural benchmarks that need no download: Yin-Yang and Randman. Seeded, reproducible."""

import numpy as np


def _yin_yang_class(x, y, r_big=0.5, r_small=0.1):
    """Class of points in the Yin-Yang figure (Kriener et al. 2021): 0 yin, 1 yang, 2 dot.

    The two dots sit at (r_big/2, r_big) and (3 r_big/2, r_big) with radius r_small.
    """
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    dot = (d_right <= r_small) | (d_left <= r_small)
    yin = (
        (d_right <= r_small)
        | ((d_left > r_small) & (d_left <= 0.5 * r_big))
        | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    return np.where(dot, 2, yin.astype(np.int64))


def yin_yang(n: int, *, seed: int = 0, r_big: float = 0.5, r_small: float = 0.1):
    """The Yin-Yang dataset (Kriener, Göltz & Petrovici 2021), class-balanced.

    Points are drawn uniformly in the disc of radius `r_big` centred at `(r_big, r_big)` and
    kept until every class has `n // 3` (the remainder goes to the first classes). Features
    are `(x, y, 1 - x, 1 - y)` (with the default radius 0.5), so that every input carries
    the same total activity when encoded as spike latencies.

    **Arguments:**

    - `n`: number of samples (>= 3).
    - `seed`: the NumPy seed; the same seed gives the same data.
    - `r_big`, `r_small`: radii of the figure and of the dots.

    **Returns:**

    `(features (n, 4) float32, labels (n,) int64)`: 0 = yin, 1 = yang, 2 = dot.
    """
    if not (isinstance(n, (int, np.integer)) and n >= 3):
        raise ValueError(f"`n` must be an int >= 3 (one sample per class at least), got {n!r}.")
    if not 0 < r_small < r_big / 2:
        raise ValueError(f"Need 0 < `r_small` < `r_big` / 2, got {r_small}, {r_big}.")
    rng = np.random.default_rng(seed)
    want = np.full(3, n // 3) + (np.arange(3) < n % 3)
    pts = [[], [], []]
    while any(len(p) < w for p, w in zip(pts, want)):
        xy = rng.uniform(0, 2 * r_big, size=(4 * n, 2))
        xy = xy[np.hypot(xy[:, 0] - r_big, xy[:, 1] - r_big) <= r_big]
        cls = _yin_yang_class(xy[:, 0], xy[:, 1], r_big, r_small)
        for c in range(3):
            need = want[c] - len(pts[c])
            if need > 0:
                pts[c].extend(xy[cls == c][:need])
    xy = np.concatenate([np.asarray(p).reshape(-1, 2) for p in pts])
    labels = np.repeat(np.arange(3), want)
    order = rng.permutation(n)
    xy, labels = xy[order], labels[order]
    feats = np.concatenate([xy, 2 * r_big - xy], axis=1).astype(np.float32)
    return feats, labels


def randman(
    n_classes: int = 2,
    n_samples: int = 100,
    *,
    n_units: int = 20,
    n_steps: int = 50,
    dim: int = 1,
    n_freq: int = 3,
    alpha: float = 2.0,
    seed: int = 0,
):
    r"""Random-manifold spike-latency classification (Zenke & Vogels 2021).

    Each class is a random smooth `dim`-dimensional manifold embedded in `n_units`
    dimensions: unit $j$ maps the intrinsic coordinate $u \in [0, 1]^{dim}$ to

    $$ f_j(u) = \sum_{i=1}^{dim} \sum_{k=1}^{n_{freq}} \frac{a_{ijk}}{k^\alpha}
                \sin\big(2\pi (k\, b_{ijk} u_i + c_{ijk})\big), $$

    rescaled to $[0, 1)$ per class and unit. A sample draws $u$ uniformly; unit $j$ then fires
    exactly one spike, at time step $\lfloor f_j(u)\, n_{steps} \rfloor$.

    **Arguments:**

    - `n_classes`, `n_samples` (per class), `n_units`, `n_steps`: sizes.
    - `dim`: intrinsic manifold dimension. `n_freq`, `alpha`: smoothness (more frequencies,
        lower `alpha`: rougher manifolds, a harder task).
    - `seed`: NumPy seed.

    **Returns:**

    `(spikes (n_classes * n_samples, n_steps, n_units) float32, labels int64)`, shuffled.
    """
    for name, v in (("n_classes", n_classes), ("n_samples", n_samples), ("n_units", n_units),
                    ("n_steps", n_steps), ("dim", dim), ("n_freq", n_freq)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
    rng = np.random.default_rng(seed)
    k = np.arange(1, n_freq + 1)
    xs, ys = [], []
    for c in range(n_classes):
        a = rng.uniform(size=(n_units, dim, n_freq))
        b = rng.uniform(size=(n_units, dim, n_freq))
        ph = rng.uniform(size=(n_units, dim, n_freq))
        u = rng.uniform(size=(n_samples, dim))
        arg = 2 * np.pi * (k * b[None] * u[:, None, :, None] + ph[None])
        f = (a[None] / k**alpha * np.sin(arg)).sum(axis=(2, 3))  # (samples, units)
        lo, hi = f.min(0), f.max(0)
        f = (f - lo) / np.where(hi > lo, hi - lo, 1.0) * (1 - 1e-6)
        t = np.floor(f * n_steps).astype(np.int64)
        spikes = np.zeros((n_samples, n_steps, n_units), np.float32)
        spikes[np.arange(n_samples)[:, None], t, np.arange(n_units)[None]] = 1.0
        xs.append(spikes)
        ys.append(np.full(n_samples, c))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order].astype(np.int64)
