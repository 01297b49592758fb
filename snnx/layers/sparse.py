"""`SparseLinear`: a linear layer that takes the event-driven path for `SpikeEvents` inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import is_int
from ..events import SpikeEvents, project
from ._abstract import AbstractEventReader


class SparseLinear(AbstractEventReader):
    r"""A linear layer whose input may be an event table (`snnx.SpikeEvents`).

    $$ y = W s + b = \sum_{j:\ s_j = 1} W_{:, j} + b, \qquad s \in \{0, 1\}^{n} $$

    Given `SpikeEvents`, the forward pass is event-driven: for every event the weight column
    of that input is added, so the work grows with the number of events, not with
    `in_features`. The result equals `eqx.nn.Linear` on the dense spikes up to float
    summation order, and the gradients are exactly the dense ones. Given a dense array it is
    `eqx.nn.Linear`. (`snnx.run` already uses the event path for a first `eqx.nn.Linear`
    when it is given `SpikeEvents`; this layer makes the choice explicit and also works
    outside `snnx.run`.)

    Events are built once, on the host, by `snnx.SpikeEvents.from_dense`: computing them
    inside a compiled step costs more than the projection saves, on every backend measured.

    ```python
    first = snnx.SparseLinear(700, 128, key=key)
    first = snnx.SparseLinear.from_linear(linear)     # same weights as `linear`
    ```

    **Arguments:**

    - `in_features`, `out_features`: sizes, as for `eqx.nn.Linear`.
    - `use_bias`: whether to add a bias. Default True.
    - `key`: PRNG key for the initialisation (that of `eqx.nn.Linear`).
    """

    weight: Float[Array, "out_features in_features"]
    bias: Float[Array, " out_features"] | None
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    use_bias: bool = eqx.field(static=True)

    def __init__(
        self, in_features: int, out_features: int, *, use_bias: bool = True, key: PRNGKeyArray
    ):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not (is_int(value) and value > 0):
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        lin = eqx.nn.Linear(in_features, out_features, use_bias=use_bias, key=key)
        self.weight = lin.weight
        self.bias = lin.bias
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = bool(use_bias)

    @classmethod
    def from_linear(cls, linear: eqx.nn.Linear) -> "SparseLinear":
        """A `SparseLinear` with the weights (and bias) of an `eqx.nn.Linear`.

        **Arguments:**

        - `linear`: an `eqx.nn.Linear` with integer `in_features` and `out_features`.

        **Returns:**

        The `SparseLinear` computing the same function on 0/1 inputs.

        **Raises:**

        `TypeError` if `linear` is not an `eqx.nn.Linear`; `ValueError` for 'scalar' sizes.
        """
        if not isinstance(linear, eqx.nn.Linear):
            raise TypeError(f"`linear` must be an `eqx.nn.Linear`, got {type(linear).__name__}.")
        if not (isinstance(linear.in_features, int) and isinstance(linear.out_features, int)):
            raise ValueError(
                "`linear` must have integer `in_features` and `out_features`, not 'scalar'."
            )
        out = cls(linear.in_features, linear.out_features, use_bias=linear.bias is not None,
                  key=jax.random.key(0))
        out = eqx.tree_at(lambda m: m.weight, out, linear.weight)
        if linear.bias is not None:
            out = eqx.tree_at(lambda m: m.bias, out, linear.bias)
        return out

    def __call__(
        self, x: "Float[Array, '*time in_features'] | SpikeEvents", *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "*time out_features"]:
        """Project spikes: dense `(..., in_features)` or `SpikeEvents` `(..., T, in_features)`.

        **Arguments:**

        - `x`: a dense input (any leading axes) or an `snnx.SpikeEvents`.
        - `key`: unused; accepted so that containers can pass one.

        **Returns:**

        `W x + b`, shape `(*leading, out_features)`.

        **Raises:**

        `ValueError` if the input size is not `in_features`.
        """
        del key
        if isinstance(x, SpikeEvents):
            if x.n_in != self.in_features:
                raise ValueError(
                    f"`x` events have n_in={x.n_in} inputs; this layer has "
                    f"in_features={self.in_features}."
                )
            return project(x, self.weight, self.bias)
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"`x` must have a last axis of size in_features={self.in_features}, got shape "
                f"{x.shape}."
            )
        return dense_projection(x.astype(self.weight.dtype), self.weight, self.bias)

    def all_steps(self, xs, state, *, keys, context):
        """All time steps at once: one gather-sum for events, one matmul for a raster."""
        return self(xs), None, None


def dense_projection(h, weight, bias):
    """`h @ W.T + b` over any leading axes (time, and a user's batch).

    Same numbers as `vmap(linear)`, but `vmap(weight @ x)` (and a user's further `vmap`
    over the batch) puts the feature axis first in the matmul's output and XLA then
    transposes `(out, B*T)` back to `(B, T, out)` (and the input to `(in, B*T)`): two full
    copies per layer that made a training step ~1.4x slower than hand-written JAX on CPU.
    """
    y = h @ weight.T
    if bias is not None:
        y = y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)
    return y
