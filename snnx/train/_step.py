"""The compiled training step, its configuration, and the programs built from it."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._checks import check_run_kwargs
from ..engine import compiler_options, run_batch
from ..events import SpikeEvents
from ..metrics import predictor_for
from ..neurons import trainable_spec
from ..parallel._placement import placement
from ._data import gather


class StepConfig(eqx.Module):
    """Everything that fixes a compiled training or evaluation program.

    All fields are static: two configurations that compare equal share one compiled
    program (`fit` and `evaluate` called again with the same loss and optimiser do not
    recompile).

    **Fields:**

    - `loss`: `loss(outputs, labels) -> scalar`, or None (evaluation without a loss).
    - `optimizer`: an optax `GradientTransformation`, or None (evaluation).
    - `regulariser`: `regulariser(records) -> scalar` added to the loss, or None.
    - `predict`: `outputs -> classes`, or None.
    - `run_kwargs`: keyword arguments for `snnx.run`, as sorted `(name, value)` pairs.
    - `stochastic`: pass a per-sample key to `snnx.run`.
    - `per_sample`: the loss is the weighted mean of per-sample losses (padding weight 0).
    """

    loss: Callable | None = eqx.field(static=True)
    optimizer: optax.GradientTransformation | None = eqx.field(static=True)
    regulariser: Callable | None = eqx.field(static=True)
    predict: Callable | None = eqx.field(static=True)
    run_kwargs: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    stochastic: bool = eqx.field(static=True)
    per_sample: bool = eqx.field(static=True)

    @property
    def run_options(self) -> dict:
        return dict(self.run_kwargs)


def resolve_predict(loss, predict):
    if predict == "auto":
        return predictor_for(loss)
    if predict is not None and not callable(predict):
        raise TypeError(
            f"`predict` must be 'auto', None or a function outputs -> classes, got {predict!r}."
        )
    return predict


def make_config(loss, optimizer, regulariser, predict, run_kwargs, stochastic, per_sample):
    """A checked `StepConfig` (named errors for a bad loss, optimiser or regulariser)."""
    if not callable(loss):
        raise TypeError(f"`loss` must be a function (outputs, labels) -> scalar, got {loss!r}.")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`optimizer` must be an optax GradientTransformation (e.g. `optax.adam(1e-3)`), "
            f"got {type(optimizer).__name__}."
        )
    if regulariser is not None and not callable(regulariser):
        raise TypeError("`regulariser` must be a function records -> scalar, or None.")
    return StepConfig(loss, optimizer, regulariser, resolve_predict(loss, predict),
                      tuple(sorted(check_run_kwargs(run_kwargs).items())), bool(stochastic),
                      bool(per_sample))


def _forward(model, xb, key, run_kwargs, batch_axis=0):
    """Batch-major `(outputs, records)`; `xb` has its batch on `batch_axis` (1: time-major,
    the layout without transposes inside the run, see `snnx.engine.run_batch`)."""
    outs, _, recs = run_batch(model, xb, key=key, record=True, batch_axis=batch_axis,
                              **run_kwargs)
    if batch_axis:
        outs, recs = jax.tree.map(lambda a: jnp.moveaxis(a, batch_axis, 0), (outs, recs))
    return outs, recs


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


def _per_sample_loss(cfg, outs, yb):
    return jax.vmap(lambda o, y: cfg.loss(o[None], y[None]))(outs, yb)


def _correct(cfg, outs, yb, w):
    if cfg.predict is not None and jnp.issubdtype(yb.dtype, jnp.integer):
        return jnp.sum((cfg.predict(outs) == yb).astype(jnp.float32) * w)
    return None


def _checked_labels(yb, outs):
    """Integer labels outside `[0, classes)` would give a NaN or silently wrong loss."""
    if not jnp.issubdtype(yb.dtype, jnp.integer):
        return yb
    c = outs.shape[-1]
    return eqx.error_if(yb, (yb < 0) | (yb >= c),
                        f"`yb` labels must lie in [0, {c}) for a model with {c} outputs.")


def _objective(params, static, xb, yb, w, key, cfg: StepConfig):
    model = eqx.combine(params, static)
    outs, recs = _forward(model, xb, key, cfg.run_options)
    yb = _checked_labels(yb, outs)
    if cfg.per_sample:
        data_loss = jnp.sum(_per_sample_loss(cfg, outs, yb) * w) / jnp.maximum(jnp.sum(w), 1.0)
    else:
        data_loss = cfg.loss(outs, yb)
    total = data_loss
    if cfg.regulariser is not None:
        total = total + cfg.regulariser(recs)
    correct = _correct(cfg, outs, yb, w)
    if correct is None:
        correct = jnp.float32(jnp.nan)
    return total, (data_loss, correct, _layer_stats(recs, w))


def core_step(model, opt_state, ok, xb, yb, w, key, cfg: StepConfig):
    """One optimiser step; after a non-finite loss (`ok` False) nothing changes any more."""
    params, static = eqx.partition(model, trainable_spec(model))
    (total, (data_loss, correct, stats)), grads = jax.value_and_grad(
        _objective, has_aux=True
    )(params, static, xb, yb, w, key, cfg)
    updates, new_opt = cfg.optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    # A finite loss can still give a non-finite update (an overflowing gradient): keep the
    # last parameters that are all finite.
    update_ok = jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(new_params)] or [jnp.bool_(True)]
    ))
    good = ok & jnp.isfinite(total) & update_ok
    params = jax.tree.map(lambda a, b: jnp.where(good, a, b), new_params, params)
    opt_state = jax.tree.map(
        lambda a, b: jnp.where(good, a, b) if eqx.is_array(a) else a, new_opt, opt_state
    )
    info = {"loss": total, "update_ok": update_ok, "data_loss": data_loss, "correct": correct,
            "count": jnp.sum(w), "rates": stats[0], "binary": stats[1]}
    return eqx.combine(params, static), opt_state, good, info


def make_step(
    loss: Callable,
    optimizer: optax.GradientTransformation,
    *,
    regulariser: Callable | None = None,
    predict: Callable | str | None = "auto",
    run_kwargs: dict | None = None,
    mesh=None,
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
    - `mesh`: data parallel, as for `fit`: each batch is split over the mesh's `"data"`
        axis (padded with weight-0 samples when it does not divide); model and optimiser
        state are replicated on it.

    **Returns:**

    `step(model, opt_state, xb, yb, *, key=None, weights=None) -> (model, opt_state, info)`
    where `info` holds `loss`, `data_loss`, `correct`, `count` and per-layer mean `rates`.
    A non-finite loss, or an update that would make a parameter non-finite, leaves `model`
    and `opt_state` unchanged (check `info["loss"]` and `info["update_ok"]`). Integer labels
    outside `[0, classes)` raise an error inside the step (`eqx.error_if`).
    With `weights` (shape `(batch,)`, 0 for padding) the loss is the weighted mean of the
    per-sample losses. `key` is split over samples and passed to `snnx.run` (dropout,
    stochastic spikes).
    """
    place = placement(mesh)
    cfg = make_config(loss, optimizer, regulariser, predict, run_kwargs, True, False)
    cfg_w = make_config(loss, optimizer, regulariser, predict, run_kwargs, True, True)

    @eqx.filter_jit(compiler_options=compiler_options())
    def _step(model, opt_state, xb, yb, w, key):
        c = cfg if w is None else cfg_w
        w_ = jnp.ones(xb.shape[:1], jnp.float32) if w is None else w
        model, opt_state, _, info = core_step(model, opt_state, jnp.bool_(True), xb, yb, w_,
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
        check_opt_state(optimizer, model, opt_state)
        xb, yb, weights = place.user_batch(xb, yb, weights)
        model, opt_state, key = place.replicate((model, opt_state, key))
        return _step(model, opt_state, xb, yb, weights, key)

    return step


@functools.lru_cache(maxsize=64)
def _expected_opt_structure(optimizer, model_structure, params_leaves):
    params = jax.tree.unflatten(model_structure, params_leaves)
    return jax.tree.structure(jax.eval_shape(optimizer.init, params))


def check_opt_state(optimizer, model, opt_state) -> None:
    """A named error for an optimiser state built from other parameters (once per model
    structure: the expected structure is cached)."""
    params = eqx.filter(model, trainable_spec(model))
    leaves, structure = jax.tree.flatten(params)
    shapes = tuple(jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in leaves)
    try:
        expected = _expected_opt_structure(optimizer, structure, shapes)
    except TypeError:  # an unhashable optimizer: skip the check
        return
    if jax.tree.structure(opt_state) != expected:
        raise ValueError(
            "`opt_state` does not match the trainable parameters of `model`: build it with "
            "`optimizer.init(eqx.filter(model, snnx.trainable_spec(model)))`. (A state from "
            "`eqx.filter(model, eqx.is_inexact_array)` also holds the neuron parameters that "
            "are not trainable, such as a frozen `tau`.)"
        )


class Programs(NamedTuple):
    """The compiled programs of one `StepConfig`: a batch step, a whole epoch (scan over
    batches) and an evaluation batch. Data are gathered (and unpacked) inside each."""

    step: Callable
    epoch: Callable
    eval_batch: Callable


def _build(cfg: StepConfig) -> Programs:
    jit = eqx.filter_jit(compiler_options=compiler_options())

    def batch_fn(model, opt_state, ok, xs, ys, idx, w, key):
        xb, yb = gather(xs, idx), ys[idx]
        return core_step(model, opt_state, ok, xb, yb, w, key if cfg.stochastic else None, cfg)

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
        xb, yb = gather(xs, idx), ys[idx]
        outs, recs = _forward(model, xb, None, cfg.run_options)
        out = {"count": jnp.sum(w)}
        if cfg.loss is not None:
            out["loss_sum"] = jnp.sum(_per_sample_loss(cfg, outs, yb) * w)
        correct = _correct(cfg, outs, yb, w)
        if correct is not None:
            out["correct"] = correct
        out["rates"], out["binary"] = _layer_stats(recs, w)
        out["rates"] = tuple(r * jnp.sum(w) for r in out["rates"])
        return out

    return Programs(step, epoch, eval_batch)


_cached_build = functools.lru_cache(maxsize=16)(_build)


def programs(cfg: StepConfig) -> Programs:
    """The programs for `cfg`, cached while the configuration is hashable."""
    try:
        return _cached_build(cfg)
    except TypeError:  # an unhashable loss or option: compile without the cache
        return _build(cfg)
