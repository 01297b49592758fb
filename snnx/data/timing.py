"""A procedural task that needs delays: classes that differ only in relative spike timing."""

import numpy as np

from .._checks import is_int


def delay_patterns(
    n_classes: int = 4,
    n_samples: int = 100,
    *,
    n_channels: int = 10,
    n_steps: int = 40,
    max_offset: int = 15,
    min_gap: int = 1,
    jitter: int = 0,
    noise: float = 0.0,
    seed: int = 0,
    template_seed: int = 0,
):
    r"""Spike patterns whose class is the relative timing of spikes across channels.

    Each class $c$ has a fixed template of distinct offsets $o_{c,j}$, one per channel $j$,
    drawn without replacement from $\{0, g, 2g, \dots\} \cap [0, \text{max\_offset}]$
    ($g$ = `min_gap`; drawn from `template_seed`, which train and test sets share). A
    sample of class $c$ picks a random onset $t_0$ and channel $j$ fires exactly one spike,
    at step $t_0 + o_{c,j}$ (plus a uniform jitter of up to `jitter` steps either way);
    optional noise spikes are added.

    So every sample has the same number of spikes per channel, and the onset carries no
    information: only *when channels fire relative to each other* tells the classes apart.
    A neuron whose synapse from channel $j$ is delayed by $\text{max\_offset} - o_{c,j}$
    receives all spikes of class $c$ in the same step (a coincidence detector); without
    delays a network only sees the spikes spread over `max_offset` steps.

    **Arguments:**

    - `n_classes`, `n_samples` (per class), `n_channels`, `n_steps`: sizes (ints >= 1).
    - `max_offset`: the largest offset in a template, steps (>= 1, < `n_steps`).
    - `min_gap`: the spacing of the offset grid, steps (>= 1). With
        `n_channels = max_offset // min_gap + 1` every class is a permutation of one set of
        spike times: the order in which the channels fire. A readout that forgets faster
        than `min_gap` steps cannot tell the classes apart without delays.
    - `jitter`: timing noise in steps, an int >= 0 (each spike moves by up to that much).
    - `noise`: probability of an extra spike per channel and step, in [0, 1).
    - `seed`: NumPy seed of the samples (onsets, jitter, noise, order).
    - `template_seed`: NumPy seed of the class templates. Default 0.

    **Returns:**

    `(spikes (n_classes * n_samples, n_steps, n_channels) float32, labels int64)`, shuffled.

    **Raises:**

    `ValueError` for sizes out of range (named).
    """
    for name, v in (("n_classes", n_classes), ("n_samples", n_samples),
                    ("n_channels", n_channels), ("n_steps", n_steps), ("max_offset", max_offset)):
        if not (is_int(v) and v >= 1):
            raise ValueError(f"`{name}` must be an int >= 1, got {v!r}.")
    if not (is_int(min_gap) and min_gap >= 1):
        raise ValueError(f"`min_gap` must be an int >= 1 (steps), got {min_gap!r}.")
    grid = np.arange(0, max_offset + 1, min_gap)
    if n_channels > grid.size:
        raise ValueError(
            f"`n_channels` = {n_channels} needs as many distinct offsets, but the grid "
            f"0, {min_gap}, ... <= `max_offset` = {max_offset} has {grid.size}; lower "
            f"`min_gap` or `n_channels`, or raise `max_offset`."
        )
    if not (is_int(jitter) and jitter >= 0):
        raise ValueError(f"`jitter` must be an int >= 0 (steps), got {jitter!r}.")
    span = max_offset + 2 * jitter
    if span >= n_steps:
        raise ValueError(
            f"`max_offset` + 2 * `jitter` = {span} must be < `n_steps` = {n_steps} so that a "
            f"pattern fits; raise `n_steps` or lower `max_offset`."
        )
    if not (0.0 <= float(noise) < 1.0):
        raise ValueError(f"`noise` must be a probability in [0, 1), got {noise!r}.")
    trng = np.random.default_rng(template_seed)
    templates = np.stack([trng.choice(grid, n_channels, replace=False)
                          for _ in range(n_classes)])
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_samples)
    n = labels.size
    onset = rng.integers(jitter, n_steps - max_offset - jitter, size=n)
    shift = rng.integers(-jitter, jitter + 1, size=(n, n_channels))
    times = onset[:, None] + templates[labels] + shift
    spikes = np.zeros((n, n_steps, n_channels), np.float32)
    spikes[np.arange(n)[:, None], times, np.arange(n_channels)[None, :]] = 1.0
    if noise:
        spikes = np.maximum(spikes, (rng.random(spikes.shape) < noise).astype(np.float32))
    order = rng.permutation(n)
    return spikes[order], labels[order].astype(np.int64)
