"""`snnx.evaluate`: loss, accuracy and firing rates over a whole dataset."""

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp

from .._checks import check_run_kwargs
from ..layers._util import is_stateful
from ..layers.sequential import Sequential
from ..parallel._placement import SingleDevice, placement
from ._data import check_batch_size, check_data, check_labels, choose_input
from ._step import StepConfig, programs, resolve_predict


def evaluate(
    model,
    data,
    loss: Callable | None = None,
    *,
    batch_size: int = 256,
    predict: Callable | str | None = "auto",
    run_kwargs: dict | None = None,
    events: bool | Literal["auto"] = "auto",
    mesh=None,
) -> dict[str, Any]:
    """Loss, accuracy and firing rates of `model` on a whole dataset (no sample skipped).

    The last partial batch is padded and masked, so every sample counts exactly once.

    **Arguments:**

    - `model`: the model, as for `fit`.
    - `data`: `(xs, ys)` as for `fit`.
    - `loss`: optional loss (see `snnx.losses`); it must be a mean of per-sample terms.
    - `batch_size`: samples per compiled batch. Default 256.
    - `predict`: `"auto"` (matching `loss`), None, or a function `outputs -> classes`.
    - `run_kwargs`: extra keyword arguments for `snnx.run`.
    - `events`: as for `fit`: evaluate on `snnx.SpikeEvents` (`"auto"`, `True`, `False`).
    - `mesh`: as for `fit`: split every batch over a device mesh (data parallel).

    **Returns:**

    A dict with `"n"` (samples), `"loss"` (if `loss` given), `"accuracy"` (if a predictor is
    known and labels are integers) and `"rates"`: `{layer index: mean firing rate}` for
    every stateful layer whose outputs are spikes (0/1).

    **Raises:**

    `ValueError`/`TypeError` for malformed data or labels that do not fit the model.
    """
    run_kwargs = check_run_kwargs(run_kwargs)
    xs, ys, n, T, step_shape = check_data(data, "data")
    check_labels(model, ys, T, step_shape, "data", run_kwargs)
    batch_size = check_batch_size(batch_size, n, "pad")
    xs, _ = choose_input(model, xs, events, run_kwargs, "data")
    return evaluate_checked(model, xs, ys, n, loss, batch_size, resolve_predict(loss, predict),
                            run_kwargs, placement(mesh))


def evaluate_checked(model, xs, ys, n, loss, batch_size, predict, run_kwargs,
                     place=SingleDevice()):
    """`evaluate` on data that are already checked."""
    batch_size = place.batch_size(batch_size)
    model, xs, ys = place.replicate((model, xs, ys))
    cfg = StepConfig(loss, None, None, predict, tuple(sorted(run_kwargs.items())), False, True)
    eval_batch = programs(cfg).eval_batch
    nb = -(-n // batch_size)
    flat = jnp.arange(nb * batch_size)
    idx = (flat % n).reshape(nb, batch_size)
    w = (flat < n).astype(jnp.float32).reshape(nb, batch_size)
    totals = None
    for b in range(idx.shape[0]):
        out = eval_batch(model, xs, ys, *place.shard((idx[b], w[b])))
        totals = out if totals is None else jax.tree.map(
            lambda a, c: (a & c) if a.dtype == jnp.bool_ else a + c, totals, out)
    totals = jax.device_get(totals)
    result: dict[str, Any] = {"n": n}
    if "loss_sum" in totals:
        result["loss"] = float(totals["loss_sum"]) / n
    if "correct" in totals:
        result["accuracy"] = float(totals["correct"]) / n
    result["rates"] = rates_by_layer(totals["rates"], totals["binary"], n, model)
    return result


def _stateful_indices(model) -> list[int]:
    """The positions `snnx.run`'s records give rates for: each stateful layer of a
    `Sequential`, or 0 for any other model (one record)."""
    if not isinstance(model, Sequential):
        return [0]
    return [i for i, lay in enumerate(model.layers) if is_stateful(lay)]


def rates_by_layer(rates, binary, denom, model) -> dict[int, float]:
    """`{layer index: rate}` for the stateful layers whose outputs are spikes."""
    idx = _stateful_indices(model)
    return {i: float(r) / denom for i, r, b in zip(idx, rates, binary) if b}
