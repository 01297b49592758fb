r"""Learnable delays: `DCLSLinear`, a delayed projection with a Gaussian kernel over delay bins.

Dilated convolution with learnable spacings (DCLS; Hammouamri, Khalfaoui-Hassani and
Masquelier 2023, 95.1% on SHD): every synapse's delay is a real-valued centre $p_{oi}$; its
kernel over the bins $d = 0, \dots, D_{\max}$ is a normalised Gaussian of width $\sigma$,

$$ y_o(t) = \sum_i \sum_{d=0}^{D_{\max}} W_{oi}\, g_\sigma(d - p_{oi})\, x_i(t - d), \qquad
   g_\sigma(u) \propto e^{-u^2 / 2\sigma^2},\ \textstyle\sum_d g_\sigma(d - p) = 1, $$

so the loss is differentiable in the centres. `sigma` starts wide (gradients reach far) and
narrows on a schedule (`SigmaSchedule`) until the kernel is nearly one bin; `round()` then
gives the `DelayedLinear` with integer delays $\operatorname{round}(p)$ to deploy or export.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._checks import check_dt, shape_tuple
from ._abstract import AbstractAllSteps, AbstractStatefulLayer
from .delay import DelayState
from .delayed import DelayedLinear, check_sizes, init_synapses
from .queues import AbstractQueue


def _check_sigma(sigma):
    s = float(sigma)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"DCLSLinear `sigma` must be a finite number > 0 (bins), got {sigma!r}.")
    return s


class SigmaSchedule(eqx.Module):
    """The kernel width over training: linear from `start` to `end` over `epochs`, then `end`.

    ```python
    schedule = snnx.layers.SigmaSchedule(start=3.0, end=0.3, epochs=20)
    model = snnx.layers.set_sigma(model, schedule(epoch))
    ```

    **Arguments:**

    - `start`, `end`: widths in delay bins, > 0.
    - `epochs`: how many epochs the narrowing takes, >= 1.
    """

    start: float = eqx.field(static=True)
    end: float = eqx.field(static=True)
    epochs: int = eqx.field(static=True)

    def __init__(self, start: float, end: float, epochs: int):
        self.start, self.end = _check_sigma(start), _check_sigma(end)
        check_sizes("SigmaSchedule", epochs=epochs)
        self.epochs = int(epochs)

    def __call__(self, epoch: int) -> float:
        """The width at `epoch` (0-based)."""
        frac = min(max(epoch, 0) / self.epochs, 1.0)
        return self.start + (self.end - self.start) * frac


class DCLSLinear(AbstractStatefulLayer, AbstractAllSteps):
    """A projection with a learnable real-valued delay per synapse (DCLS, see module text).

    ```python
    layer = snnx.layers.DCLSLinear(700, 128, max_delay=25, sigma=5.0, key=key)
    ys, _ = snnx.run(layer, xs)              # trained by BPTT: weight and centre are leaves
    deployed = layer.round()                 # a DelayedLinear with integer delays
    ```

    **Arguments:**

    - `in_features`, `out_features`: sizes (ints >= 1).
    - `max_delay`: the largest delay bin, >= 0 (the kernel has `max_delay + 1` bins).
    - `sigma`: the kernel width in bins, > 0 (not trained; change it with `with_sigma`).
    - `centre`: initial delays `(out_features, in_features)` in bins. Default: uniform in
        `[0, max_delay]` from `key`.
    - `weight`: initial weights. Default: `eqx.nn.Linear`'s initialisation from `key`.
    - `dt`: the time step (for `round()` and NIR export). Default 1.
    - `key`: PRNG key for the defaults.

    **Raises:**

    `ValueError` for sizes, shapes, a non-positive `sigma` or non-finite centres (named).
    """

    weight: Float[Array, "out_features in_features"]
    centre: Float[Array, "out_features in_features"]
    sigma: Float[Array, ""]
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    max_delay: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_delay: int,
        *,
        sigma: float,
        centre: Float[ArrayLike, "out_features in_features"] | None = None,
        weight: Float[ArrayLike, "out_features in_features"] | None = None,
        dt: float = 1.0,
        key: PRNGKeyArray | None = None,
    ):
        cls = "DCLSLinear"
        shape = (out_features, in_features)
        def draw_centres(k):
            return jax.random.uniform(k, shape, maxval=float(max_delay))

        weight, centre = init_synapses(
            cls, in_features, out_features, max_delay, key=key, weight=weight,
            other=("centres", centre, draw_centres),
        )
        for name, value in (("weight", weight), ("centre", centre)):
            if jnp.shape(value) != shape:
                raise ValueError(f"{cls} `{name}` must have shape {shape}, got {jnp.shape(value)}.")
        centre = jnp.asarray(centre, dtype=jnp.result_type(float))
        if not isinstance(centre, jax.core.Tracer) and not np.all(np.isfinite(centre)):
            raise ValueError(f"{cls} `centre` must be finite.")
        self.weight = jnp.asarray(weight)
        self.centre = centre
        self.sigma = jnp.asarray(_check_sigma(sigma))
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.max_delay = int(max_delay)
        self.dt = check_dt(cls, dt)

    def kernel(self) -> Float[Array, "bins out_features in_features"]:
        """The weights per delay bin, `W * g_sigma(d - centre)`, shape `(max_delay+1, out, in)`."""
        bins = jnp.arange(self.max_delay + 1, dtype=self.centre.dtype).reshape(-1, 1, 1)
        sigma = jax.lax.stop_gradient(self.sigma).astype(self.centre.dtype)
        logits = -0.5 * ((bins - self.centre[None]) / sigma) ** 2
        g = jax.nn.softmax(logits, axis=0)  # normalised over bins, stable at small sigma
        return g * self.weight[None]

    def init_state(self, shape, dtype=jnp.float32) -> DelayState:
        """A silent history of the last `max_delay + 1` inputs of `shape` `(in_features,)`.

        **Arguments:**

        - `shape`: one step of one sample's input, `(in_features,)`.
        - `dtype`: the history's dtype. Default float32.

        **Returns:**

        A `DelayState` (ring of inputs, write position).

        **Raises:**

        `ValueError` if `shape` is not `(in_features,)`.
        """
        shape = shape_tuple(shape)
        if shape != (self.in_features,):
            raise ValueError(
                f"DCLSLinear input `shape` must be (in_features,) = ({self.in_features},), got "
                f"{shape}."
            )
        return DelayState(jnp.zeros((self.max_delay + 1, self.in_features), dtype),
                          jnp.zeros((), jnp.int32))

    def __call__(self, x, state: DelayState, *, key: PRNGKeyArray | None = None):
        """One step: store `x`, return the kernel applied to the last `max_delay + 1` inputs."""
        del key
        size = self.max_delay + 1
        k = self.kernel()
        dtype = jnp.result_type(state.buffer, k, x)
        buffer = state.buffer.astype(dtype).at[state.position].set(x.astype(dtype))
        recent = buffer[(state.position - jnp.arange(size)) % size]   # recent[d] = x(t - d)
        y = jnp.einsum("di,doi->o", recent, k.astype(dtype))
        return y, DelayState(buffer, (state.position + 1) % size)

    def all_steps(self, xs, state: DelayState, *, keys, context):
        """All steps at once: the kernel applied to windows of the history (no scan)."""
        if context.record:
            return context.scan(self, xs, state, keys)
        size, T = self.max_delay + 1, xs.shape[0]
        k = self.kernel()
        dtype = jnp.result_type(state.buffer, k, xs)
        past = state.buffer[(state.position - size + jnp.arange(size)) % size].astype(dtype)
        history = jnp.concatenate([past, xs.astype(dtype)])
        index = size + jnp.arange(T)[:, None] - jnp.arange(size)[None, :]   # (T, bins)
        ys = jnp.einsum("tdi,doi->to", history[index], k.astype(dtype))
        position = (state.position + T) % size
        last = size + T - 1 - (position - 1 - jnp.arange(size)) % size
        return ys, DelayState(history[last], position), None

    def with_sigma(self, sigma: float) -> "DCLSLinear":
        """The same layer with kernel width `sigma` (bins, > 0)."""
        return eqx.tree_at(lambda m: m.sigma, self, jnp.asarray(_check_sigma(sigma)))

    def round(self, queue: AbstractQueue | None = None) -> DelayedLinear:
        """The deployable layer: integer delays `round(centre)` (clipped to the bins), same
        weights, on `queue` (default `snnx.layers.default_queue()`).

        **Returns:**

        An `snnx.layers.DelayedLinear`; as `sigma -> 0` it computes what this layer does.
        """
        d = jnp.clip(jnp.round(self.centre), 0, self.max_delay).astype(jnp.int32)
        return DelayedLinear(self.in_features, self.out_features, self.max_delay, delay=d,
                             weight=self.weight, queue=queue, dt=self.dt)


def set_sigma(model: PyTree, sigma: float) -> PyTree:
    """`model` with every `DCLSLinear` inside given kernel width `sigma` (a schedule step).

    **Arguments:**

    - `model`: any PyTree (an `snnx.Sequential`, a tuple of layers, ...).
    - `sigma`: the new width in bins, > 0.

    **Returns:**

    The same PyTree with the widths replaced.
    """
    is_dcls = lambda n: isinstance(n, DCLSLinear)  # noqa: E731
    return jax.tree.map(lambda n: n.with_sigma(sigma) if is_dcls(n) else n, model,
                        is_leaf=is_dcls)


def round_delays(model: PyTree, queue: AbstractQueue | None = None) -> PyTree:
    """`model` with every `DCLSLinear` replaced by its `round()` (integer delays).

    **Arguments:**

    - `model`: any PyTree.
    - `queue`: the queue for the rounded layers. Default `snnx.layers.default_queue()`.

    **Returns:**

    The same PyTree, deployable (and exportable to NIR).
    """
    is_dcls = lambda n: isinstance(n, DCLSLinear)  # noqa: E731
    return jax.tree.map(lambda n: n.round(queue) if is_dcls(n) else n, model, is_leaf=is_dcls)
