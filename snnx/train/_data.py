"""Training data: checks, batching on the device, and the choice of input format."""

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import is_int
from ..data.packing import PackedSpikes, unpack_spikes
from ..engine import all_steps_form, run
from ..events import SpikeEvents
from ..layers._abstract import AbstractEventReader
from ..layers._util import is_stateful
from ..layers.sequential import Sequential


def check_data(data, name: str):
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
    if not isinstance(xs, (PackedSpikes, SpikeEvents)):
        _check_finite(xs, f"`{name}` inputs")
    _check_finite(ys, f"`{name}` targets")
    return xs, ys, n, T, tuple(shape[2:])


def _check_finite(a, what: str) -> None:
    """Refuse NaN/inf before training: one NaN in one sample would turn every weight it
    reaches into NaN at the first step. One reduction on the device, one number to the
    host."""
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        return
    finite = jnp.isfinite(a).reshape(a.shape[0], -1).all(axis=1)
    n_bad = int(a.shape[0] - jnp.count_nonzero(finite))
    if n_bad:
        first = int(jnp.argmin(finite))
        raise ValueError(
            f"{what} contain non-finite values (NaN or inf) in {n_bad} of {a.shape[0]} "
            f"samples, the first at index {first}; drop or repair those samples (e.g. "
            f"`np.nan_to_num`) before training."
        )


def check_labels(model, ys, T, step_shape, name, run_kwargs):
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


def gather(xs, idx):
    """Batch `idx` of the dataset, dense float32 `(B, T, *shape)`; runs inside `jit`."""
    if isinstance(xs, PackedSpikes):
        return unpack_spikes(xs.bits[idx], xs.length, axis=1)
    if isinstance(xs, SpikeEvents):
        return xs[idx]  # stays an event table: `run` projects it event by event
    xb = xs[idx]
    return xb if xb.dtype == jnp.float32 else xb.astype(jnp.float32)


def batches(key, n, batch_size, last_batch):
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


def check_batch_size(batch_size, n, last_batch):
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}.")
    if last_batch == "drop" and batch_size > n:
        raise ValueError(
            f"`batch_size={batch_size}` is larger than the {n} training samples, so "
            f"`last_batch='drop'` would train on nothing; lower `batch_size` or use "
            f"`last_batch='pad'`."
        )
    return min(int(batch_size), n) if last_batch == "pad" else int(batch_size)


# Measured on CPU (bench/README.md): on workload (a) the event path's training step costs
# 0.62x / 0.75x / 1.31x of the dense one at 1% / 3% / 10% density, i.e. it wins while the
# busiest step holds fewer than about a twelfth of the inputs.
AUTO_MAX_FRACTION = 1 / 12


def _first_projection(model):
    """The first layer of a (nested) `Sequential` if it projects events (a stateless
    `AbstractEventReader` form: `Linear`, `SparseLinear`), else None."""
    layer = model
    while isinstance(layer, Sequential) and layer.layers:
        layer = layer.layers[0]
    form = all_steps_form(layer)
    if isinstance(form, AbstractEventReader) and form.has_all_steps() and not is_stateful(layer):
        return layer
    return None


def choose_input(model, xs, events, run_kwargs, name: str):
    """`xs` as `SpikeEvents` when the event path applies and pays; used by `fit`/`evaluate`.

    `events=True` converts (or raises, saying why not); `False` never converts; `"auto"`
    converts a dense 0/1 array on CPU when the model starts with a `Linear`/`SparseLinear`
    in layer-major mode and the busiest step holds at most `AUTO_MAX_FRACTION` of the
    inputs (`PackedSpikes` are left packed: the table would need more memory than the bits).
    On GPU/TPU, `"auto"` keeps the dense input (not yet measured there).

    **Returns:** `(xs, kind)` with `kind` one of `"events"`, `"dense"`, `"packed"`.
    """
    if events not in (True, False, "auto"):
        raise ValueError(f"`events` must be True, False or 'auto', got {events!r}.")
    if isinstance(xs, SpikeEvents):
        return xs, "events"
    kind = "packed" if isinstance(xs, PackedSpikes) else "dense"
    if events is False:
        return xs, kind
    why = None
    if run_kwargs.get("mode", "auto") == "step":
        why = "`run_kwargs` asks for step-major mode, which projects dense spikes"
    elif _first_projection(model) is None:
        why = "the model does not start with an `eqx.nn.Linear` or `snnx.SparseLinear`"
    elif len(xs.shape) != 3:
        why = f"the inputs are not vectors per step (shape {tuple(xs.shape)})"
    if events == "auto":
        if why or kind == "packed" or jax.default_backend() != "cpu":
            return xs, kind
        x = np.asarray(xs)
        if x.dtype != np.bool_ and not np.all((x == 0) | (x == 1)):
            return xs, kind
        most = int((x != 0).sum(axis=-1).max())
        if most > AUTO_MAX_FRACTION * x.shape[-1]:
            return xs, kind
        return SpikeEvents.from_dense(x), "events"
    if why:
        raise ValueError(f"`events=True` cannot be used for `{name}`: {why}.")
    x = xs.unpack() if kind == "packed" else np.asarray(xs)
    if x.dtype != np.bool_ and not np.all((x == 0) | (x == 1)):
        raise ValueError(
            f"`events=True` needs `{name}` inputs that are binary spikes (0 or 1); these are "
            f"graded: pass `events=False`."
        )
    return SpikeEvents.from_dense(x), "events"
