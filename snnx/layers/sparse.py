"""An event-driven input projection: only the weight columns of active inputs are read."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

_WORD = 32


def _pack(x2d: Array) -> Array:
    """Bit-pack each row's events: `(R, n_in)` -> `(ceil(n_in/32), R)` uint32 words.

    Words come out word-major (`(n_words, R)`), so the per-event search below works on
    contiguous rows of R lanes (vectorised) instead of reducing along a short last axis.
    """
    r, n_in = x2d.shape
    n_words = -(-n_in // _WORD)
    active = jnp.pad(x2d != 0, ((0, 0), (0, n_words * _WORD - n_in)))
    shifts = jnp.arange(_WORD, dtype=jnp.uint32).reshape(1, 1, _WORD)
    bits = active.reshape(r, n_words, _WORD).astype(jnp.uint32) << shifts
    return jnp.sum(bits, axis=-1, dtype=jnp.uint32).T  # distinct bits: the sum is the OR


def _gather_sum(words: Array, w_t_padded: Array, n_in: int) -> Array:
    """Sum the rows of `w_t_padded` named by the set bits of `words`, lowest bit first.

    Each iteration finds every row's lowest set bit (first non-zero word, then
    count-trailing-zeros), clears it, and adds that input's weight column; rows with no event
    left add the zero row `w_t_padded[n_in]`. The loop stops when every event is consumed,
    so it runs (most events in one row) times and nothing can overflow. Everything is
    elementwise on the packed words or a contiguous row gather: XLA runs these far faster
    than the scatters behind `nonzero` or `segment_sum`. (A `while_loop` cannot be
    reverse-differentiated, which is fine: the backward pass is defined by `custom_vjp`.)
    """
    n_words, r = words.shape
    word_ids = jnp.arange(n_words, dtype=jnp.int32).reshape(n_words, 1)

    def cond(carry):
        return jnp.any(carry[0] != 0)

    def body(carry):
        words, acc = carry
        first = jnp.argmax(words != 0, axis=0).astype(jnp.int32)
        in_first = word_ids == first.reshape(1, r)
        w = jnp.sum(jnp.where(in_first, words, 0), axis=0, dtype=jnp.uint32)
        lowest = w & (~w + jnp.uint32(1))
        bit = (_WORD - 1) - jax.lax.clz(lowest).astype(jnp.int32)
        idx = jnp.where(w != 0, first * _WORD + bit, n_in)
        words = jnp.where(in_first, words & (words - jnp.uint32(1)), words)
        return words, acc + w_t_padded.at[idx].get(mode="promise_in_bounds")

    acc = jnp.zeros((r, w_t_padded.shape[1]), w_t_padded.dtype)
    return jax.lax.while_loop(cond, body, (words, acc))[1]


@jax.custom_vjp
def _event_matmul(x2d, weight):
    w_t = jnp.concatenate([weight.T, jnp.zeros((1, weight.shape[0]), weight.dtype)])
    return _gather_sum(_pack(x2d), w_t, x2d.shape[1])


def _event_matmul_fwd(x2d, weight):
    return _event_matmul(x2d, weight), (x2d, weight)


def _event_matmul_bwd(res, g):
    # The cotangents of the dense product `x @ W.T`: identical gradients to `eqx.nn.Linear`
    # (also for `x`, at inactive inputs too, which matters when spikes carry surrogates).
    x2d, weight = res
    return g @ weight, g.T @ x2d


_event_matmul.defvjp(_event_matmul_fwd, _event_matmul_bwd)


class SparseLinear(eqx.Module):
    r"""A linear layer for binary spike inputs that reads only the weights of active inputs.

    $$ y = W s + b = \sum_{j:\ s_j = 1} W_{:, j} + b, \qquad s \in \{0, 1\}^{n} $$

    The forward pass is event-driven: inputs are bit-packed and, for every event, the weight
    column of that input is added (the work grows with the number of events, not with
    `in_features`). The result equals `eqx.nn.Linear` on 0/1 inputs up to float summation
    order, and the gradients are exactly the dense ones (the backward pass is the dense
    product). Use it in an `snnx.Sequential` in place of the first `eqx.nn.Linear`; under
    `snnx.run` it sees all time steps of a sample at once.

    ```python
    first = snnx.SparseLinear(700, 128, key=key)
    first = snnx.SparseLinear.from_linear(linear)     # same weights as `linear`
    ```

    Whether it beats the dense matmul depends on the backend and the density: see
    `bench/README.md` for measured numbers (on CPU, XLA's dense matmul wins at 3% density).

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
            if isinstance(value, bool) or not (isinstance(value, int) and value > 0):
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
        self, x: Float[Array, "*time in_features"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*time out_features"]:
        """Project spikes `x` of shape `(in_features,)` (or `(T, in_features)`).

        **Arguments:**

        - `x`: spikes, exactly 0 or 1; leading axes (e.g. time) are allowed.
        - `key`: unused; accepted so that containers can pass one.

        **Returns:**

        `W x + b`, shape `(*leading, out_features)`.

        **Raises:**

        `ValueError` if the last axis of `x` is not `in_features`; a runtime error (from
        `eqx.error_if`) if `x` holds a value other than 0 or 1.
        """
        del key
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"`x` must have a last axis of size in_features={self.in_features}, got shape "
                f"{x.shape}."
            )
        lead = x.shape[:-1]
        x2d = x.reshape((math.prod(lead), self.in_features)).astype(self.weight.dtype)
        x2d = eqx.error_if(
            x2d, jnp.any(x2d * (x2d - 1) != 0),
            "SparseLinear input `x` must be binary spikes (0 or 1); use `eqx.nn.Linear` for "
            "graded inputs.",
        )
        y = _event_matmul(x2d, self.weight)
        if self.bias is not None:
            y = y + self.bias.reshape(1, self.out_features)
        return y.reshape(lead + (self.out_features,))
