"""Plots for spiking networks (matplotlib, an optional dependency).

Every function takes arrays with time FIRST (as `snnx.run` returns them), draws into `ax`
if given (else a new figure), and returns `(figure, axes)`. In a script that only writes
files, select the non-interactive backend first: `matplotlib.use("Agg")`.
"""

from collections.abc import Mapping

import numpy as np

__all__ = ["raster", "membrane", "rate_histogram", "training_curves"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: `pip install 'snnx[plot]'`."
        ) from None
    return plt


def _axes(ax, figsize=(6, 3.5)):
    if ax is not None:
        return ax.figure, ax
    fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _time_by_neuron(x, name):
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim < 2:
        raise ValueError(f"`{name}` must have shape (time, *neurons), got {x.shape}.")
    return x.reshape(x.shape[0], -1)


def raster(spikes, *, dt: float = 1.0, ax=None, title: str | None = None, **scatter_kwargs):
    """Raster plot: a dot at (time, neuron) for every spike.

    **Arguments:**

    - `spikes`: shape `(time, *neurons)` (neurons are flattened); nonzero means a spike.
    - `dt`: time step, to label the x axis in time units. Default 1 (steps).
    - `ax`: optional matplotlib Axes to draw into.
    - `title`: optional title.
    - `scatter_kwargs`: passed to `ax.scatter` (defaults `s=4, c="k"`).

    **Returns:**

    `(figure, axes)`.

    **Raises:**

    `ValueError` for a scalar `spikes`.
    """
    s = _time_by_neuron(spikes, "spikes")
    t, n = np.nonzero(s)
    fig, ax = _axes(ax)
    kw = {"s": 4, "c": "k", "marker": "|" if s.shape[1] > 50 else "o"}
    kw.update(scatter_kwargs)
    ax.scatter(t * dt, n, **kw)
    ax.set_xlim(-0.5 * dt, (s.shape[0] - 0.5) * dt)
    ax.set_ylim(-0.5, s.shape[1] - 0.5)
    ax.set_xlabel("time step" if dt == 1.0 else "time")
    ax.set_ylabel("neuron")
    ax.set_title(title or f"{len(t)} spikes, {s.shape[1]} neurons")
    return fig, ax


def membrane(v, *, neurons=None, threshold=None, spikes=None, dt: float = 1.0, ax=None,
             title: str | None = None):
    """Membrane-potential traces of a few neurons over time.

    **Arguments:**

    - `v`: potentials, shape `(time, *neurons)` (e.g. `record.state.v`).
    - `neurons`: indices of the (flattened) neurons to draw; default the first 5.
    - `threshold`: optional threshold drawn as a dashed line.
    - `spikes`: optional spikes `(time, *neurons)`, marked on the traces.
    - `dt`, `ax`, `title`: as for `raster`.

    **Returns:**

    `(figure, axes)`.
    """
    v = _time_by_neuron(v, "v")
    neurons = list(range(min(5, v.shape[1]))) if neurons is None else list(neurons)
    bad = [i for i in neurons if not 0 <= i < v.shape[1]]
    if bad:
        raise ValueError(f"`neurons` {bad} out of range for {v.shape[1]} neurons.")
    t = np.arange(v.shape[0]) * dt
    fig, ax = _axes(ax)
    sp = None if spikes is None else _time_by_neuron(spikes, "spikes")
    for i in neurons:
        (line,) = ax.plot(t, v[:, i], label=f"neuron {i}")
        if sp is not None:
            ts = np.nonzero(sp[:, i])[0]
            ax.plot(ts * dt, v[ts, i], "v", color=line.get_color(), ms=5)
    if threshold is not None:
        ax.axhline(float(np.mean(threshold)), ls="--", c="gray", lw=1, label="threshold")
    ax.set_xlabel("time step" if dt == 1.0 else "time")
    ax.set_ylabel("membrane potential")
    ax.legend(fontsize="small", loc="upper right")
    if title:
        ax.set_title(title)
    return fig, ax


def rate_histogram(spikes, *, dt: float = 1.0, bins: int = 20, ax=None,
                   title: str | None = None):
    """Histogram of per-neuron firing rates.

    **Arguments:**

    - `spikes`: shape `(time, *neurons)`; for a batch `(B, T, *neurons)` pass
        `spikes.reshape(-1, *spikes.shape[2:])` (rates are then averaged over all samples).
    - `dt`: time step; rates are spikes per unit time (per step with the default 1).
    - `bins`: number of histogram bins.
    - `ax`, `title`: as for `raster`.

    **Returns:**

    `(figure, axes)`.
    """
    s = _time_by_neuron(spikes, "spikes")
    rates = s.mean(axis=0) / dt
    fig, ax = _axes(ax)
    ax.hist(rates, bins=bins, color="C0", edgecolor="white")
    ax.set_xlabel("firing rate (spikes / step)" if dt == 1.0 else "firing rate")
    ax.set_ylabel("neurons")
    ax.set_title(title or f"mean rate {rates.mean():.3g}, {np.mean(rates == 0):.0%} silent")
    return fig, ax


def training_curves(history: Mapping, *, axes=None):
    """Loss and accuracy per epoch from the history returned by `snnx.fit`.

    **Arguments:**

    - `history`: the `snnx.History` from `snnx.fit`, or a dict like it (keys `loss`,
        `accuracy`, and with evaluation data `eval_loss`, `eval_accuracy`).
    - `axes`: optional pair of Axes `(loss_ax, accuracy_ax)`.

    **Returns:**

    `(figure, (loss_ax, accuracy_ax))`.

    **Raises:**

    `ValueError` if `history` has no `loss` entries.
    """
    if not isinstance(history, Mapping) or not history.get("loss"):
        raise ValueError(
            "`history` must be the `snnx.History` returned by `snnx.fit` (or a dict like it), "
            "with a `loss` list."
        )
    if axes is None:
        fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    else:
        fig = axes[0].figure
    ax_l, ax_a = axes
    ep = np.arange(1, len(history["loss"]) + 1)
    ax_l.plot(ep, history["loss"], "o-", label="train")
    if history.get("eval_loss") and None not in history["eval_loss"]:
        ax_l.plot(ep, history["eval_loss"], "s-", label="test")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("loss")
    ax_l.set_yscale("log")
    ax_l.legend()
    if history.get("accuracy") and None not in history["accuracy"]:
        ax_a.plot(ep, 100 * np.asarray(history["accuracy"]), "o-", label="train")
    if history.get("eval_accuracy") and None not in history["eval_accuracy"]:
        ax_a.plot(ep, 100 * np.asarray(history["eval_accuracy"]), "s-", label="test")
        best = max(history["eval_accuracy"])
        ax_a.set_title(f"final test {100 * history['eval_accuracy'][-1]:.1f}% "
                       f"(best {100 * best:.1f}%)")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("accuracy (%)")
    ax_a.legend()
    return fig, (ax_l, ax_a)
