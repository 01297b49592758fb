"""Training: `fit`, `evaluate`, `make_step`, and checkpoints.

Data lives on the device. `fit` takes `train_data=(xs, ys)` where `xs` is

- a dense array of shape `(N, T, *input_shape)` (time second: sample, time, features), or
- an `snnx.data.PackedSpikes` (bit-packed along time), unpacked inside the compiled step,
- an `snnx.SpikeEvents` (event table), projected event by event by the first layer,

and `ys` are integer class labels `(N,)` (or float targets `(N, classes)` for losses such as
`snnx.losses.mse_count`). Each epoch is shuffled on the device with a key; batches are
gathered (and unpacked) inside the compiled step, so only indices cross from Python.
"""

import functools
import os
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import PRNGKeyArray, PyTree

from .checkpoint import load_checkpoint, save_checkpoint
from .data.packing import PackedSpikes, unpack_spikes
from .events import SpikeEvents, choose_input
from .layers._util import is_stateful
from .metrics import predictor_for
from .neurons import trainable_spec
from .run import compiler_options, run

__all__ = ["fit", "evaluate", "make_step", "save_checkpoint", "load_checkpoint"]



# --------------------------------------------------------------------------- data


def _check_data(data, name: str):
    """Validate `(xs, ys)` on the host; return `(xs, ys, n, T, step_shape)` on the device."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"`{name}` must be a pair `(xs, ys)`: inputs `(N, T, *input_shape)` (an array, "
            f"`snnx.data.PackedSpikes` or `snnx.SpikeEvents`) and labels `(N,)`; got "
            f"{type(data).__name__}."
        )
    xs, ys = data
    if isinstance(xs, (PackedSpikes, SpikeEvents)):
        shape = xs.shape
        if len(shape) < 3:
            raise ValueError(
                f"`{name}` inputs must have shape (N, T, *input_shape) with a sample and a time "
                f"axis, got {shape}."
            )
    else:
        xs = jnp.asarray(xs)
        shape = xs.shape
        if xs.ndim < 2:
            raise ValueError(
                f"`{name}` inputs must have shape (N, T, *input_shape) with a sample and a time "
                f"axis, got {shape}."
            )
    n, T = int(shape[0]), int(shape[1])
    if n == 0:
        raise ValueError(f"`{name}` is empty (0 samples); give at least one sample.")
    if T == 0:
        raise ValueError(f"`{name}` inputs have 0 time steps (shape {shape}).")
    ys = jnp.asarray(ys)
    if ys.ndim < 1 or ys.shape[0] != n:
        raise ValueError(
            f"`{name}` has {n} inputs but labels of shape {ys.shape}: give one label per "
            f"sample, shape ({n},)."
        )
    if not (jnp.issubdtype(ys.dtype, jnp.integer) or jnp.issubdtype(ys.dtype, jnp.floating)):
        raise TypeError(f"`{name}` labels must be integers or floats, got {ys.dtype}.")
    return xs, ys, n, T, tuple(shape[2:])


def _check_labels(model, ys, T, step_shape, name, run_kwargs):
    """Labels against the model's output: class count and range, before any compilation."""
    out = jax.eval_shape(
        lambda: run(model, jnp.zeros((T,) + step_shape, jnp.float32), **run_kwargs)[0]
    )
    out_shape = tuple(out.shape[1:])
    if len(out_shape) != 1:
        raise ValueError(
            f"the model's output per time step has shape {out_shape}; losses expect one "
            f"vector of classes, shape (classes,). End the model with a layer of `classes` "
            f"outputs (e.g. `eqx.nn.Linear(h, classes)` and `snnx.LI`)."
        )
    C = out_shape[0]
    if jnp.issubdtype(ys.dtype, jnp.integer):
        if ys.ndim != 1:
            raise ValueError(f"`{name}` integer labels must have shape (N,), got {ys.shape}.")
        lo, hi = int(ys.min()), int(ys.max())
        if lo < 0 or hi >= C:
            raise ValueError(
                f"`{name}` labels must lie in [0, {C}) for a model with {C} outputs, found "
                f"values in [{lo}, {hi}]; fix the labels or the size of the last layer."
            )
    elif ys.shape[1:] != (C,):
        raise ValueError(
            f"`{name}` float targets must have shape (N, {C}) for a model with {C} outputs, "
            f"got {ys.shape}."
        )
    return C


def _gather(xs, idx):
    """Batch `idx` of the dataset, dense float32 `(B, T, *shape)`; runs inside `jit`."""
    if isinstance(xs, PackedSpikes):
        return unpack_spikes(xs.bits[idx], xs.length, axis=1)
    if isinstance(xs, SpikeEvents):
        return xs[idx]  # stays an event table: `run` projects it event by event
    xb = xs[idx]
    return xb if xb.dtype == jnp.float32 else xb.astype(jnp.float32)


def _batches(key, n, batch_size, last_batch):
    """Shuffled index batches `(n_batches, B)` and weights (0 marks padding)."""
    perm = jax.random.permutation(key, n)
    if last_batch == "drop":
        nb = n // batch_size
        idx = perm[: nb * batch_size].reshape(nb, batch_size)
        return idx, jnp.ones((nb, batch_size), jnp.float32)
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    # Padding repeats real samples (so batch statistics stay sensible) with weight 0.
    idx = jnp.concatenate([perm, perm[:pad]]).reshape(nb, batch_size)
    w = (jnp.arange(nb * batch_size) < n).astype(jnp.float32).reshape(nb, batch_size)
    return idx, w


# --------------------------------------------------------------------------- the step


def _resolve_predict(loss, predict):
    if predict == "auto":
        return predictor_for(loss)
    if predict is not None and not callable(predict):
        raise TypeError(
            f"`predict` must be 'auto', None or a function outputs -> classes, got {predict!r}."
        )
    return predict


def _forward(model, xb, key, run_kwargs):
    def one(x, k):
        outs, _, recs = run(model, x, key=k, record=True, **run_kwargs)
        return outs, recs

    if key is None:
        return jax.vmap(lambda x: one(x, None))(xb)
    return jax.vmap(one)(xb, jax.random.split(key, xb.shape[0]))


def _layer_stats(recs, w):
    """Mean output of every stateful layer over real samples, and whether it is binary."""
    rates, binary = [], []
    wsum = jnp.maximum(jnp.sum(w), 1.0)
    for rec in recs:
        if rec.state is None:
            continue
        o = rec.output
        per_sample = jnp.mean(o.reshape(o.shape[0], -1), axis=1)
        rates.append(jnp.sum(per_sample * w) / wsum)
        binary.append(jnp.all((o == 0) | (o == 1)))
    return tuple(rates), tuple(binary)


def _objective(params, static, xb, yb, w, key, cfg):
    model = eqx.combine(params, static)
    outs, recs = _forward(model, xb, key, cfg["run_kwargs"])
    if cfg["per_sample"]:
        per = jax.vmap(lambda o, y: cfg["loss"](o[None], y[None]))(outs, yb)
        data_loss = jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)
    else:
        data_loss = cfg["loss"](outs, yb)
    total = data_loss
    if cfg["regulariser"] is not None:
        total = total + cfg["regulariser"](recs)
    predict = cfg["predict"]
    if predict is not None and jnp.issubdtype(yb.dtype, jnp.integer):
        correct = jnp.sum((predict(outs) == yb).astype(jnp.float32) * w)
    else:
        correct = jnp.float32(jnp.nan)
    return total, (data_loss, correct, _layer_stats(recs, w))


def _core_step(model, opt_state, ok, xb, yb, w, key, cfg):
    """One optimiser step; after a non-finite loss (`ok` False) nothing changes any more."""
    params, static = eqx.partition(model, trainable_spec(model))
    (total, (data_loss, correct, stats)), grads = jax.value_and_grad(
        _objective, has_aux=True
    )(params, static, xb, yb, w, key, cfg)
    updates, new_opt = cfg["optimizer"].update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(total)
    good = ok & finite
    params = jax.tree.map(lambda a, b: jnp.where(good, a, b), new_params, params)
    opt_state = jax.tree.map(
        lambda a, b: jnp.where(good, a, b) if eqx.is_array(a) else a, new_opt, opt_state
    )
    info = {"loss": total, "data_loss": data_loss, "correct": correct,
            "count": jnp.sum(w), "rates": stats[0], "binary": stats[1]}
    return eqx.combine(params, static), opt_state, good, info


def _config(loss, optimizer, regulariser, predict, run_kwargs, stochastic, per_sample):
    if not callable(loss):
        raise TypeError(f"`loss` must be a function (outputs, labels) -> scalar, got {loss!r}.")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`optimizer` must be an optax GradientTransformation (e.g. `optax.adam(1e-3)`), "
            f"got {type(optimizer).__name__}."
        )
    if regulariser is not None and not callable(regulariser):
        raise TypeError("`regulariser` must be a function records -> scalar, or None.")
    return {
        "loss": loss, "optimizer": optimizer, "regulariser": regulariser,
        "predict": _resolve_predict(loss, predict), "run_kwargs": dict(run_kwargs or {}),
        "stochastic": bool(stochastic), "per_sample": bool(per_sample),
    }


def make_step(
    loss: Callable,
    optimizer: optax.GradientTransformation,
    *,
    regulariser: Callable | None = None,
    predict: Callable | str | None = "auto",
    run_kwargs: dict | None = None,
):
    """A compiled training step for custom loops.

    ```python
    step = snnx.make_step(snnx.losses.ce_max_membrane, optax.adam(1e-3))
    opt_state = optimizer.init(eqx.filter(model, snnx.trainable_spec(model)))
    model, opt_state, info = step(model, opt_state, xb, yb)      # xb: (B, T, *input_shape)
    ```

    **Arguments:**

    - `loss`: `loss(outputs, labels) -> scalar` with `outputs` of shape
        `(batch, time, classes)` (see `snnx.losses`).
    - `optimizer`: an optax `GradientTransformation`.
    - `regulariser`: optional `regulariser(records) -> scalar` added to the loss, where
        `records` are the batched `snnx.LayerRecord`s of `snnx.run(..., record=True)`.
    - `predict`: `"auto"` (the predictor matching `loss`, see `snnx.metrics.predictor_for`),
        None, or a function `outputs -> classes` used to count correct samples.
    - `run_kwargs`: extra keyword arguments for `snnx.run` (`mode`, `unroll`, `remat`).

    **Returns:**

    `step(model, opt_state, xb, yb, *, key=None, weights=None) -> (model, opt_state, info)`
    where `info` holds `loss`, `data_loss`, `correct`, `count` and per-layer mean `rates`.
    A non-finite loss leaves `model` and `opt_state` unchanged (check `info["loss"]`).
    With `weights` (shape `(batch,)`, 0 for padding) the loss is the weighted mean of the
    per-sample losses. `key` is split over samples and passed to `snnx.run` (dropout,
    stochastic spikes).
    """
    cfg = _config(loss, optimizer, regulariser, predict, run_kwargs, True, False)
    cfg_w = dict(cfg, per_sample=True)

    @eqx.filter_jit(compiler_options=compiler_options())
    def _step(model, opt_state, xb, yb, w, key):
        c = cfg if w is None else cfg_w
        w_ = jnp.ones(xb.shape[:1], jnp.float32) if w is None else w
        model, opt_state, _, info = _core_step(model, opt_state, jnp.bool_(True), xb, yb, w_,
                                               key, c)
        return model, opt_state, info

    def step(model, opt_state, xb, yb, *, key=None, weights=None):
        if not isinstance(xb, SpikeEvents):
            xb = jnp.asarray(xb)
        if xb.ndim < 3:
            raise ValueError(
                f"`xb` must be a batch of shape (batch, time, *input_shape), got {xb.shape}."
            )
        yb = jnp.asarray(yb)
        if yb.shape[:1] != xb.shape[:1]:
            raise ValueError(
                f"`yb` has {yb.shape[:1]} labels for a batch of {xb.shape[0]} inputs."
            )
        if not isinstance(xb, SpikeEvents) and not jnp.issubdtype(xb.dtype, jnp.floating):
            xb = xb.astype(jnp.float32)
        return _step(model, opt_state, xb, yb, weights, key)

    return step


@functools.lru_cache(maxsize=16)
def _compiled(cfg_key):
    """Batch and whole-epoch programs for one configuration (cached so `fit` and `evaluate`
    called again with the same loss and optimizer do not recompile)."""
    cfg = dict(cfg_key)
    cfg["run_kwargs"] = dict(cfg["run_kwargs"])
    jit = eqx.filter_jit(compiler_options=compiler_options())

    def batch_fn(model, opt_state, ok, xs, ys, idx, w, key):
        xb, yb = _gather(xs, idx), ys[idx]
        return _core_step(model, opt_state, ok, xb, yb, w,
                          key if cfg["stochastic"] else None, cfg)

    @jit
    def step(model, opt_state, ok, xs, ys, idx, w, key):
        return batch_fn(model, opt_state, ok, xs, ys, idx, w, key)

    @jit
    def epoch(model, opt_state, ok, xs, ys, idx, w, keys):
        params, static = eqx.partition(model, eqx.is_array)

        def body(carry, inp):
            p, o, k_ok = carry
            m, o, k_ok, info = batch_fn(eqx.combine(p, static), o, k_ok, xs, ys, *inp)
            return (eqx.filter(m, eqx.is_array), o, k_ok), info

        (params, opt_state, ok), infos = jax.lax.scan(body, (params, opt_state, ok),
                                                      (idx, w, keys))
        return eqx.combine(params, static), opt_state, ok, infos

    @jit
    def eval_batch(model, xs, ys, idx, w):
        xb, yb = _gather(xs, idx), ys[idx]
        outs, recs = _forward(model, xb, None, cfg["run_kwargs"])
        out = {"count": jnp.sum(w)}
        if cfg["loss"] is not None:
            per = jax.vmap(lambda o, y: cfg["loss"](o[None], y[None]))(outs, yb)
            out["loss_sum"] = jnp.sum(per * w)
        if cfg["predict"] is not None and jnp.issubdtype(yb.dtype, jnp.integer):
            out["correct"] = jnp.sum((cfg["predict"](outs) == yb).astype(jnp.float32) * w)
        out["rates"], out["binary"] = _layer_stats(recs, w)
        out["rates"] = tuple(r * jnp.sum(w) for r in out["rates"])
        return out

    return step, epoch, eval_batch


def _freeze(cfg):
    return tuple(sorted(
        (k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in cfg.items()
    ))


def _thaw_programs(cfg):
    try:
        return _compiled(_freeze(cfg))
    except TypeError:  # an unhashable loss or option: compile without the cache
        return _compiled.__wrapped__(_freeze(cfg))


# --------------------------------------------------------------------------- evaluate


def evaluate(
    model,
    data,
    loss: Callable | None = None,
    *,
    batch_size: int = 256,
    predict: Callable | str | None = "auto",
    run_kwargs: dict | None = None,
    events: bool | Literal["auto"] = "auto",
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

    **Returns:**

    A dict with `"n"` (samples), `"loss"` (if `loss` given), `"accuracy"` (if a predictor is
    known and labels are integers) and `"rates"`: `{layer index: mean firing rate}` for
    every stateful layer whose outputs are spikes (0/1).

    **Raises:**

    `ValueError`/`TypeError` for malformed data or labels that do not fit the model.
    """
    run_kwargs = dict(run_kwargs or {})
    xs, ys, n, T, step_shape = _check_data(data, "data")
    _check_labels(model, ys, T, step_shape, "data", run_kwargs)
    batch_size = _check_batch_size(batch_size, n, "pad")
    xs, _ = choose_input(model, xs, events, run_kwargs, "data")
    return _evaluate(model, xs, ys, n, loss, batch_size, _resolve_predict(loss, predict),
                     run_kwargs)


def _evaluate(model, xs, ys, n, loss, batch_size, predict, run_kwargs):
    """`evaluate` on data that are already checked."""
    cfg = {"loss": loss, "optimizer": None, "regulariser": None,
           "predict": predict, "run_kwargs": run_kwargs,
           "stochastic": False, "per_sample": True}
    _, _, eval_batch = _thaw_programs(cfg)
    nb = -(-n // batch_size)
    flat = jnp.arange(nb * batch_size)
    idx = (flat % n).reshape(nb, batch_size)
    w = (flat < n).astype(jnp.float32).reshape(nb, batch_size)
    totals = None
    for b in range(idx.shape[0]):
        out = eval_batch(model, xs, ys, idx[b], w[b])
        totals = out if totals is None else jax.tree.map(
            lambda a, c: (a & c) if a.dtype == jnp.bool_ else a + c, totals, out)
    totals = jax.device_get(totals)
    result: dict[str, Any] = {"n": n}
    if "loss_sum" in totals:
        result["loss"] = float(totals["loss_sum"]) / n
    if "correct" in totals:
        result["accuracy"] = float(totals["correct"]) / n
    result["rates"] = _rates_dict(totals["rates"], totals["binary"], n, model)
    return result


def _stateful_indices(model):
    layers = getattr(model, "layers", None)
    if layers is None:
        return [0]
    return [i for i, lay in enumerate(layers) if is_stateful(lay)]


def _rates_dict(rates, binary, denom, model):
    idx = _stateful_indices(model)
    return {i: float(r) / denom for i, r, b in zip(idx, rates, binary) if b}


def _check_batch_size(batch_size, n, last_batch):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
        batch_size < 1
    ):
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if last_batch == "drop" and batch_size > n:
        raise ValueError(
            f"`batch_size={batch_size}` is larger than the {n} training samples, so "
            f"`last_batch='drop'` would train on nothing; lower `batch_size` or use "
            f"`last_batch='pad'`."
        )
    return min(int(batch_size), n) if last_batch == "pad" else int(batch_size)


# --------------------------------------------------------------------------- fit


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress bars need tqdm: `pip install 'snnx[progress]'`, or pass "
            "`progress=False`."
        ) from None
    return tqdm


def fit(
    model,
    loss: Callable,
    optimizer: optax.GradientTransformation,
    train_data,
    *,
    epochs: int,
    key: PRNGKeyArray,
    batch_size: int = 32,
    eval_data=None,
    eval_batch_size: int = 256,
    regulariser: Callable | None = None,
    predict: Callable | str | None = "auto",
    last_batch: Literal["drop", "pad"] = "drop",
    scan_epoch: bool = False,
    stochastic: bool = False,
    run_kwargs: dict | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    opt_state: PyTree | None = None,
    events: bool | Literal["auto"] = "auto",
) -> tuple[Any, dict[str, list]]:
    """Train `model` on `train_data` and return it with a per-epoch history.

    ```python
    model, history = snnx.fit(model, snnx.losses.ce_max_membrane, optax.adam(2e-3),
                              (xs, ys), epochs=10, key=jax.random.key(0), batch_size=64,
                              eval_data=(xs_test, ys_test))
    ```

    The trainable leaves (`snnx.trainable_spec(model)`) are updated; everything runs on the
    device: the epoch's permutation is drawn from `fold_in(key, epoch)`, batches are gathered
    and (for `PackedSpikes`) unpacked inside the compiled step.

    **Arguments:**

    - `model`: a stateful model (`snnx.Sequential`, ...) whose output per step is a vector
        of `classes`.
    - `loss`: `loss(outputs, labels) -> scalar`, `outputs` of shape `(batch, time, classes)`;
        see `snnx.losses`.
    - `optimizer`: an optax `GradientTransformation`.
    - `train_data`: `(xs, ys)`: `xs` a dense array `(N, T, *input_shape)`, an
        `snnx.data.PackedSpikes` or an `snnx.SpikeEvents`; `ys` integer labels `(N,)` or
        float targets `(N, classes)`.
    - `epochs`: the total number of epochs (with `resume`, counting the resumed ones).
    - `key`: PRNG key for shuffling (and stochastic models).
    - `batch_size`: samples per step. Default 32.
    - `eval_data`: optional `(xs, ys)` evaluated after every epoch (`evaluate`).
    - `eval_batch_size`: batch size for evaluation. Default 256.
    - `regulariser`: optional `regulariser(records) -> scalar` added to the loss; `records`
        are the batched `snnx.LayerRecord`s of `snnx.run(..., record=True)`.
    - `predict`: `"auto"` (the predictor matching `loss`), None, or `outputs -> classes`.
    - `last_batch`: what happens to the `N % batch_size` samples left over each epoch:
        `"drop"` (default) skips them (a different subset every epoch, as the data are
        reshuffled; a warning says how many), `"pad"` fills the last batch with repeated
        samples of weight 0, so every sample is used (the loss must then be a mean of
        per-sample terms, as all of `snnx.losses` are).
    - `scan_epoch`: if True, compile each whole epoch into one program (`lax.scan` over
        batches): no Python between steps. Gives the same parameters as the default
        step-by-step mode.
    - `stochastic`: pass a per-sample key to `snnx.run` (dropout, escape-noise spikes).
    - `run_kwargs`: extra keyword arguments for `snnx.run` (`mode`, `unroll`, `remat`).
    - `checkpoint`: a file path; model, optimiser state, epoch and history are saved there
        after every epoch.
    - `resume`: if True and `checkpoint` exists, continue from it (same result as an
        uninterrupted run with the same `key`).
    - `progress`: show a tqdm progress bar and a line per epoch. Default True.
    - `opt_state`: optional initial optimiser state (default `optimizer.init(params)`).
    - `events`: train on `snnx.SpikeEvents` (event-driven first projection, same numbers up
        to float summation order). `"auto"` (default) converts a dense 0/1 array on CPU when
        the model starts with a Linear and the busiest step holds at most 1/12 of the inputs
        (where it measured faster); `True` always converts (or says why it cannot); `False`
        never. `PackedSpikes` convert only with `True`.

    **Returns:**

    `(model, history)`; `history["input"]` says what was trained on (`"events"`, `"dense"`,
    `"packed"`); `history` has per-epoch lists `"loss"`, `"accuracy"` (training,
    running over the epoch), `"rates"` (`{layer index: rate}`), `"time"` (seconds), and with
    `eval_data` `"eval_loss"`, `"eval_accuracy"`, `"eval_rates"`; plus `"skipped"` (samples
    dropped per epoch), `"opt_state"` (the final optimiser state, not saved in checkpoints'
    history) and `"stopped"` (None, or the message of a non-finite loss).

    **Raises:**

    `ValueError`/`TypeError` before any compilation for empty data, mismatched lengths,
    labels out of range, bad `batch_size`/`epochs`/`last_batch`, or a checkpoint of another
    architecture. A NaN/inf loss does not raise: training stops with a warning naming the
    epoch and step, and the last good model is returned.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive int, got {epochs!r}.")
    if last_batch not in ("drop", "pad"):
        raise ValueError(f"`last_batch` must be 'drop' or 'pad', got {last_batch!r}.")
    run_kwargs = dict(run_kwargs or {})
    xs, ys, n, T, step_shape = _check_data(train_data, "train_data")
    batch_size = _check_batch_size(batch_size, n, last_batch)
    _check_labels(model, ys, T, step_shape, "train_data", run_kwargs)
    xs, input_kind = choose_input(model, xs, events, run_kwargs, "train_data")
    if eval_data is not None:
        exs, eys, e_n, eT, e_shape = _check_data(eval_data, "eval_data")
        exs, _ = choose_input(model, exs, events, run_kwargs, "eval_data")
        eval_batch_size = _check_batch_size(eval_batch_size, e_n, "pad")
        if e_shape != step_shape:
            raise ValueError(
                f"`eval_data` inputs have per-step shape {e_shape} but `train_data` has "
                f"{step_shape}."
            )
        _check_labels(model, eys, eT, e_shape, "eval_data", run_kwargs)
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs a `checkpoint` path to resume from.")
    cfg = _config(loss, optimizer, regulariser, predict, run_kwargs, stochastic,
                  last_batch == "pad")
    step, epoch_prog, _ = _thaw_programs(cfg)
    tqdm = _tqdm() if progress else None

    if opt_state is None:
        opt_state = optimizer.init(eqx.filter(model, trainable_spec(model)))
    history: dict[str, Any] = {"loss": [], "accuracy": [], "rates": [], "time": [],
                               "skipped": n % batch_size if last_batch == "drop" else 0,
                               "input": input_kind}
    if eval_data is not None:
        history.update(eval_loss=[], eval_accuracy=[], eval_rates=[])
    start = 0
    if resume and os.path.exists(checkpoint):
        model, opt_state, start, saved = load_checkpoint(checkpoint, model, opt_state)
        history.update({k: v for k, v in saved.items() if k in history})
        history["rates"] = [{int(k): v for k, v in r.items()} for r in history["rates"]]
        if "eval_rates" in history:
            history["eval_rates"] = [{int(k): v for k, v in r.items()}
                                     for r in history["eval_rates"]]
    if history["skipped"] and start < epochs:
        warnings.warn(
            f"`last_batch='drop'`: {history['skipped']} of {n} training samples are skipped "
            f"each epoch (a different random subset every epoch); use `last_batch='pad'` to "
            f"use them all or pick a `batch_size` that divides {n}.",
            stacklevel=2,
        )
    history["stopped"] = None
    ok = jnp.bool_(True)
    bar = None
    if progress and scan_epoch:
        bar = tqdm(total=epochs, initial=start, desc="epochs", unit="epoch")
    for ep in range(start, epochs):
        t0 = time.perf_counter()
        ek = jax.random.fold_in(key, ep)
        idx, w = _batches(jax.random.fold_in(ek, 0), n, batch_size, last_batch)
        keys = jax.random.split(jax.random.fold_in(ek, 1), idx.shape[0])
        if scan_epoch:
            model, opt_state, ok, infos = epoch_prog(model, opt_state, ok, xs, ys, idx, w, keys)
            infos = jax.device_get(infos)
        else:
            pbar = tqdm(total=idx.shape[0], desc=f"epoch {ep + 1}/{epochs}", unit="batch",
                        leave=False) if progress else None
            collected, tally = [], []
            for b in range(idx.shape[0]):
                model, opt_state, ok, info = step(model, opt_state, ok, xs, ys, idx[b], w[b],
                                                  keys[b])
                collected.append(info)
                if pbar is not None:
                    pbar.update(1)
                    if b % 10 == 9 or b == idx.shape[0] - 1:
                        postfix = {"loss": f"{float(info['loss']):.4f}"}
                        if cfg["predict"] is not None and jnp.issubdtype(ys.dtype, jnp.integer):
                            for i in collected[len(tally):]:
                                tally.append((float(i["count"]), float(i["correct"])))
                            seen, hits = np.sum(tally, axis=0)
                            postfix["acc"] = f"{hits / seen:.4f}"
                        pbar.set_postfix(postfix)
            if pbar is not None:
                pbar.close()
            infos = jax.device_get(collected)
            infos = jax.tree.map(lambda *a: np.stack(a), *infos)
        losses = np.asarray(infos["loss"])
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            msg = (f"non-finite loss ({losses[bad[0]]}) at epoch {ep + 1}, step {int(bad[0]) + 1}"
                   f" of {losses.size}; training stopped and the last good model (before that "
                   f"step) is returned. Lower the learning rate or check the inputs.")
            history["stopped"] = msg
            if bar is not None:
                bar.close()
            warnings.warn(msg, stacklevel=2)
            # `ok` froze the parameters at the last good step of this epoch.
            break
        counts = np.asarray(infos["count"])
        history["loss"].append(float(np.sum(np.asarray(infos["data_loss"]) * counts)
                                     / counts.sum()))
        correct = np.asarray(infos["correct"])
        history["accuracy"].append(float(correct.sum() / counts.sum())
                                   if np.all(np.isfinite(correct)) else None)
        rates = [np.sum(np.asarray(r) * counts) / counts.sum() for r in infos["rates"]]
        binary = [bool(np.all(b)) for b in infos["binary"]]
        history["rates"].append(_rates_dict(rates, binary, 1.0, model))
        if eval_data is not None:
            ev = _evaluate(model, exs, eys, e_n, loss, eval_batch_size, cfg["predict"],
                           run_kwargs)
            history["eval_loss"].append(ev.get("loss"))
            history["eval_accuracy"].append(ev.get("accuracy"))
            history["eval_rates"].append(ev["rates"])
        history["time"].append(time.perf_counter() - t0)
        if progress:
            line = _epoch_line(history, ep, epochs)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(line.split(": ", 1)[1])
                bar.write(line)
            else:
                tqdm.write(line)
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, opt_state, ep + 1,
                            {k: v for k, v in history.items() if k != "stopped"})
    if bar is not None and history["stopped"] is None:
        bar.close()
    history["opt_state"] = opt_state
    return model, history


def _epoch_line(history, ep, epochs):
    parts = [f"loss {history['loss'][-1]:.4f}"]
    if history["accuracy"][-1] is not None:
        parts.append(f"acc {history['accuracy'][-1]:.4f}")
    if history.get("eval_loss") and history["eval_loss"][-1] is not None:
        parts.append(f"eval_loss {history['eval_loss'][-1]:.4f}")
    if history.get("eval_accuracy") and history["eval_accuracy"][-1] is not None:
        parts.append(f"eval_acc {history['eval_accuracy'][-1]:.4f}")
    parts.append(f"{history['time'][-1]:.2f}s")
    return f"epoch {ep + 1}/{epochs}: " + "  ".join(parts)

