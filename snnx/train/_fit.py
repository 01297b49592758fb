"""`snnx.fit`: the epoch loop around the compiled step."""

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

from .._checks import check_key, check_run_kwargs, is_int
from ..neurons import trainable_spec
from ..parallel._placement import placement
from ._checkpoint import check_checkpoint, resume_checkpoint, run_record, save_checkpoint
from ._data import batches, check_batch_size, check_data, check_labels, choose_input
from ._evaluate import evaluate_checked, rates_by_layer
from ._history import History
from ._progress import AbstractProgressMeter, as_progress_meter
from ._step import check_opt_state, make_config, programs


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
    resume: bool | Literal["force"] = False,
    progress: bool | AbstractProgressMeter = True,
    opt_state: PyTree | None = None,
    events: bool | Literal["auto"] = "auto",
    mesh=None,
) -> tuple[Any, History]:
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
        after every epoch (with a checksum and a record of the run: batch size, data
        fingerprint, optimizer, key). Its folder is checked before training starts.
    - `resume`: if True and `checkpoint` exists, continue from it (same result as an
        uninterrupted run with the same `key`). A checkpoint saved with another
        `batch_size`, `last_batch`, dataset, optimizer (settings or learning rate) or `key`
        is refused; `resume="force"` loads it anyway, for a change you intend (e.g. a new
        learning rate for the remaining epochs).
    - `progress`: True (default) for tqdm bars and a line per epoch
        (`snnx.train.TqdmProgressMeter()`), False for nothing, or your own
        `snnx.train.AbstractProgressMeter`.
    - `opt_state`: optional initial optimiser state (default `optimizer.init(params)`).
    - `events`: train on `snnx.SpikeEvents` (event-driven first projection, same numbers up
        to float summation order). `"auto"` (default) converts a dense 0/1 array on CPU when
        the model starts with a Linear and the busiest step holds at most 1/12 of the inputs
        (where it measured faster); `True` always converts (or says why it cannot); `False`
        never. `PackedSpikes` convert only with `True`.
    - `mesh`: data-parallel training: a `jax.sharding.Mesh` with a `"data"` axis or a list
        of devices (see `snnx.parallel.DataParallel`). Every batch is split over it; the
        dataset, model and optimiser state are replicated; same numbers as one device.
        A `batch_size` that does not divide it is padded with weight-0 samples.

    **Returns:**

    `(model, history)`: an `snnx.train.History`, read like a dict: per-epoch lists
    `"loss"`, `"accuracy"` (training, running over the epoch), `"rates"`
    (`{layer index: rate}`), `"time"` (seconds), and with `eval_data` `"eval_loss"`,
    `"eval_accuracy"`, `"eval_rates"`; `"input"` (what was trained on: `"events"`,
    `"dense"`, `"packed"`), `"skipped"` (samples dropped per epoch) and `"stopped"` (None,
    or the message of a non-finite loss). `history.opt_state` is the final optimiser state.

    **Raises:**

    `ValueError`/`TypeError` before any compilation for empty data, mismatched lengths,
    labels out of range, bad `batch_size`/`epochs`/`last_batch`, or a checkpoint of another
    architecture. A NaN/inf loss does not raise: training stops with a warning naming the
    epoch and step, and the last good model is returned.
    """
    if not is_int(epochs) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive int, got {epochs!r}.")
    if last_batch not in ("drop", "pad"):
        raise ValueError(f"`last_batch` must be 'drop' or 'pad', got {last_batch!r}.")
    check_key(key, what="it draws each epoch's shuffle")
    run_kwargs = check_run_kwargs(run_kwargs)
    xs, ys, n, T, step_shape = check_data(train_data, "train_data")
    batch_size = check_batch_size(batch_size, n, last_batch)
    check_labels(model, ys, T, step_shape, "train_data", run_kwargs)
    xs, input_kind = choose_input(model, xs, events, run_kwargs, "train_data")
    if eval_data is not None:
        exs, eys, e_n, eT, e_shape = check_data(eval_data, "eval_data")
        exs, _ = choose_input(model, exs, events, run_kwargs, "eval_data")
        eval_batch_size = check_batch_size(eval_batch_size, e_n, "pad")
        if e_shape != step_shape:
            raise ValueError(
                f"`eval_data` inputs have per-step shape {e_shape} but `train_data` has "
                f"{step_shape}."
            )
        check_labels(model, eys, eT, e_shape, "eval_data", run_kwargs)
    check_checkpoint(checkpoint, resume)
    place = placement(mesh)
    cfg = make_config(loss, optimizer, regulariser, predict, run_kwargs, stochastic,
                      last_batch == "pad" or place.pads(batch_size))
    progs = programs(cfg)
    meter = as_progress_meter(progress)
    has_accuracy = cfg.predict is not None and jnp.issubdtype(ys.dtype, jnp.integer)

    if opt_state is None:
        opt_state = optimizer.init(eqx.filter(model, trainable_spec(model)))
    else:
        check_opt_state(optimizer, model, opt_state)
    history = History(evaluated=eval_data is not None, input=input_kind,
                      skipped=n % batch_size if last_batch == "drop" else 0)
    start = 0
    run = (None if checkpoint is None
           else run_record(model, optimizer, xs, ys, batch_size, last_batch, key))
    if resume and os.path.exists(checkpoint):
        model, opt_state, start, saved = resume_checkpoint(checkpoint, model, opt_state, run,
                                                           resume)
        history.restore(saved)
    if history["skipped"] and start < epochs:
        warnings.warn(
            f"`last_batch='drop'`: {history['skipped']} of {n} training samples are skipped "
            f"each epoch (a different random subset every epoch); use `last_batch='pad'` to "
            f"use them all or pick a `batch_size` that divides {n}.",
            stacklevel=2,
        )
    xs, ys, model, opt_state = place.replicate((xs, ys, model, opt_state))
    if eval_data is not None:
        exs, eys = place.replicate((exs, eys))
    ok = place.replicate(jnp.bool_(True))
    meter.start(epochs, start, scan_epoch)
    for ep in range(start, epochs):
        t0 = time.perf_counter()
        ek = jax.random.fold_in(key, ep)
        idx, w = batches(jax.random.fold_in(ek, 0), n, batch_size, last_batch)
        keys = place.replicate(jax.random.split(jax.random.fold_in(ek, 1), idx.shape[0]))
        idx, w = place.epoch_batches(idx, w)
        if scan_epoch:
            model, opt_state, ok, infos = progs.epoch(model, opt_state, ok, xs, ys, idx, w,
                                                      keys)
            infos = jax.device_get(infos)
        else:
            meter.epoch_start(ep, epochs, idx.shape[0])
            collected = []
            for b in range(idx.shape[0]):
                model, opt_state, ok, info = progs.step(model, opt_state, ok, xs, ys, idx[b],
                                                        w[b], keys[b])
                collected.append(info)
                meter.batch(b, idx.shape[0], info, has_accuracy)
            infos = jax.tree.map(lambda *a: np.stack(a), *jax.device_get(collected))
        losses = np.asarray(infos["loss"])
        bad = np.flatnonzero(~np.isfinite(losses) | ~np.asarray(infos["update_ok"]))
        if bad.size:
            what = (f"non-finite loss ({losses[bad[0]]})" if not np.isfinite(losses[bad[0]])
                    else f"non-finite parameter update (loss {losses[bad[0]]:.4g})")
            msg = (f"{what} at epoch {ep + 1}, step {int(bad[0]) + 1}"
                   f" of {losses.size}; training stopped and the last good model (before that "
                   f"step) is returned. Lower the learning rate or check the inputs.")
            history.stop(msg)
            meter.close()
            warnings.warn(msg, stacklevel=2)
            # `ok` froze the parameters at the last good step of this epoch.
            break
        _record_epoch(history, infos, model)
        if eval_data is not None:
            ev = evaluate_checked(model, exs, eys, e_n, loss, eval_batch_size, cfg.predict,
                                  run_kwargs, place)
            history.append(eval_loss=ev.get("loss"), eval_accuracy=ev.get("accuracy"),
                           eval_rates=ev["rates"])
        history.append(time=time.perf_counter() - t0)
        meter.epoch_end(_epoch_line(history, ep, epochs))
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, opt_state, ep + 1, history.as_dict(), run=run)
    meter.close()
    history.opt_state = opt_state
    return model, history


def _record_epoch(history: History, infos, model) -> None:
    """The epoch's loss, running accuracy and firing rates, weighted by real samples."""
    counts = np.asarray(infos["count"])
    correct = np.asarray(infos["correct"])
    rates = [np.sum(np.asarray(r) * counts) / counts.sum() for r in infos["rates"]]
    binary = [bool(np.all(b)) for b in infos["binary"]]
    history.append(
        loss=float(np.sum(np.asarray(infos["data_loss"]) * counts) / counts.sum()),
        accuracy=(float(correct.sum() / counts.sum()) if np.all(np.isfinite(correct))
                  else None),
        rates=rates_by_layer(rates, binary, 1.0, model),
    )


def _epoch_line(history: History, ep: int, epochs: int) -> str:
    parts = [f"loss {history['loss'][-1]:.4f}"]
    if history["accuracy"][-1] is not None:
        parts.append(f"acc {history['accuracy'][-1]:.4f}")
    if history.get("eval_loss") and history["eval_loss"][-1] is not None:
        parts.append(f"eval_loss {history['eval_loss'][-1]:.4f}")
    if history.get("eval_accuracy") and history["eval_accuracy"][-1] is not None:
        parts.append(f"eval_acc {history['eval_accuracy'][-1]:.4f}")
    parts.append(f"{history['time'][-1]:.2f}s")
    return f"epoch {ep + 1}/{epochs}: " + "  ".join(parts)
