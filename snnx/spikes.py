"""Spike functions: a Heaviside step forward, a surrogate derivative backward.

A spike is emitted where the (threshold-centred) membrane $x = v - \\vartheta$ is strictly
positive:

$$ s = H(x) = \\begin{cases} 1 & x > 0 \\\\ 0 & x \\le 0 \\end{cases} $$

$H$ has a zero derivative almost everywhere, so gradient-based training replaces $H'(x)$ by a
smooth *surrogate* $\\sigma'(x)$ (Neftci, Mostafa & Zenke 2019). The replacement is written
with `jax.custom_jvp`, so both forward-mode (`jax.jvp`, `jax.jacfwd`) and reverse-mode
(`jax.grad`) see the surrogate.

Every surrogate here is an `equinox.Module` with a sharpness `alpha`; call it on `x` to spike:

```python
surrogate = snnx.spikes.FastSigmoid(alpha=25.0)
s = surrogate(v - threshold)          # exactly 0.0 or 1.0
```

A new surrogate is one line, given its derivative:

```python
gauss = snnx.spikes.Custom(lambda x: jnp.exp(-x**2 / 2) / jnp.sqrt(2 * jnp.pi))
```
"""

import abc
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

__all__ = [
    "heaviside",
    "AbstractSurrogate",
    "FastSigmoid",
    "SuperSpike",
    "Sigmoid",
    "Arctan",
    "Triangular",
    "Rectangular",
    "Exponential",
    "StraightThrough",
    "Custom",
    "EscapeNoise",
]


@jax.custom_jvp
def _step_with_derivative(x: Array, derivative: Array) -> Array:
    # `derivative` is the surrogate slope at `x`; it only matters in the JVP rule below.
    del derivative
    return (x > 0).astype(x.dtype)


@_step_with_derivative.defjvp
def _step_with_derivative_jvp(primals, tangents):
    x, derivative = primals
    x_dot, _ = tangents
    # Linear in x_dot, so reverse mode (transposition) works too. The slope itself is
    # treated as a constant: there is no meaningful gradient through the surrogate shape.
    return _step_with_derivative(x, derivative), derivative * x_dot


def heaviside(x: Float[ArrayLike, "..."], derivative: Float[ArrayLike, "..."]) -> Array:
    """Heaviside step $H(x)$ whose derivative is replaced by `derivative`.

    **Arguments:**

    - `x`: the threshold-centred membrane potential; a spike is emitted where `x > 0`.
    - `derivative`: the value used for $\\partial H / \\partial x$ (same shape as `x`, or
        broadcastable to it). It is not differentiated through.

    **Returns:**

    An array like `x` holding exactly `0.0` or `1.0`.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"`x` must be a floating-point array to carry a surrogate gradient, got dtype "
            f"{x.dtype}; convert it with `x.astype(jnp.float32)`."
        )
    derivative = jnp.broadcast_to(jax.lax.stop_gradient(jnp.asarray(derivative, x.dtype)), x.shape)
    return _step_with_derivative(x, derivative)


def _check_alpha(alpha):
    # Only concrete values can be checked; a traced alpha (e.g. under vmap) is trusted.
    if isinstance(alpha, (int, float)) and not alpha > 0:
        raise ValueError(f"`alpha` (the surrogate's sharpness) must be > 0, got {alpha}.")


class AbstractSurrogate(eqx.Module):
    """Base class of surrogate spike functions.

    Subclasses implement `derivative(x)`, the surrogate slope $\\sigma'(x)$; calling the
    surrogate spikes with a Heaviside forward and that slope backward.
    """

    @abc.abstractmethod
    def derivative(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The surrogate derivative $\\sigma'(x)$ at the threshold-centred membrane `x`."""

    def __call__(
        self, x: Float[ArrayLike, "..."], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "..."]:
        """Spike where `x > 0`.

        **Arguments:**

        - `x`: threshold-centred membrane potential $v - \\vartheta$.
        - `key`: unused by deterministic surrogates; accepted so that callers can pass one.

        **Returns:**

        Spikes, exactly `0.0` or `1.0`, shaped like `x`.
        """
        del key
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(
                f"`x` must be a floating-point array to carry a surrogate gradient, got dtype "
                f"{x.dtype}; convert it with `x.astype(jnp.float32)`."
            )
        # Trace the slope abstractly now (no compute) so a bad custom derivative is reported
        # at the call, not only when a gradient is first taken.
        jax.eval_shape(self.derivative, x)
        leaves, treedef = jax.tree.flatten(self)
        return _surrogate_step(treedef, x, *leaves)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _surrogate_step(treedef, x, *leaves):
    # Same as `heaviside(x, surrogate.derivative(x))`, but the slope is only computed when a
    # derivative is taken (in the JVP rule), not in every forward pass: inference and the
    # primal part of a training step skip it.
    del treedef, leaves
    return (x > 0).astype(x.dtype)


@_surrogate_step.defjvp
def _surrogate_step_jvp(treedef, primals, tangents):
    x, *leaves = primals
    x_dot = tangents[0]
    surrogate = jax.tree.unflatten(treedef, leaves)
    derivative = jax.lax.stop_gradient(jnp.broadcast_to(surrogate.derivative(x), x.shape))
    return _surrogate_step(treedef, x, *leaves), derivative.astype(x.dtype) * x_dot


class FastSigmoid(AbstractSurrogate):
    """Fast-sigmoid (SuperSpike) surrogate, Zenke & Ganguli (2018).

    $$ \\sigma'(x) = \\frac{1}{(1 + \\alpha |x|)^2} $$

    The default `alpha=25` is snnTorch's `fast_sigmoid` slope; Zenke & Ganguli use 100.
    """

    alpha: float = 25.0

    def __check_init__(self):
        _check_alpha(self.alpha)

    def derivative(self, x):
        return 1.0 / (1.0 + self.alpha * jnp.abs(x)) ** 2


SuperSpike = FastSigmoid


class Sigmoid(AbstractSurrogate):
    """Logistic surrogate: the derivative of $\\mathrm{sigmoid}(\\alpha x)$.

    $$ \\sigma'(x) = \\alpha\\, s(\\alpha x)\\,(1 - s(\\alpha x)), \\quad s(z) = 1/(1+e^{-z}) $$
    """

    alpha: float = 25.0

    def __check_init__(self):
        _check_alpha(self.alpha)

    def derivative(self, x):
        s = jax.nn.sigmoid(self.alpha * x)
        return self.alpha * s * (1.0 - s)


class Arctan(AbstractSurrogate):
    """Arctangent surrogate (Fang et al. 2021; snnTorch's `atan`).

    $$ \\sigma'(x) = \\frac{\\alpha / 2}{1 + (\\tfrac{\\pi}{2} \\alpha x)^2} $$
    """

    alpha: float = 2.0

    def __check_init__(self):
        _check_alpha(self.alpha)

    def derivative(self, x):
        return (self.alpha / 2.0) / (1.0 + (jnp.pi / 2.0 * self.alpha * x) ** 2)


class Triangular(AbstractSurrogate):
    """Triangular (piecewise-linear) surrogate (Bellec et al. 2018), unit area.

    $$ \\sigma'(x) = \\alpha \\max(0, 1 - \\alpha |x|) $$
    """

    alpha: float = 1.0

    def __check_init__(self):
        _check_alpha(self.alpha)

    def derivative(self, x):
        return self.alpha * jnp.maximum(0.0, 1.0 - self.alpha * jnp.abs(x))


class Rectangular(AbstractSurrogate):
    """Rectangular (boxcar) surrogate, unit area.

    $$ \\sigma'(x) = \\alpha \\, \\mathbb{1}[|x| < 1/(2\\alpha)] $$
    """

    alpha: float = 1.0

    def __check_init__(self):
        _check_alpha(self.alpha)

    def derivative(self, x):
        return jnp.where(jnp.abs(x) < 0.5 / self.alpha, self.alpha, 0.0).astype(x.dtype)


class Exponential(AbstractSurrogate):
    """Exponential (Laplace-shaped) surrogate (Shrestha & Orchard 2018), unit area.

    $$ \\sigma'(x) = \\tfrac{\\alpha}{2} e^{-\\alpha |x|} $$
    """

    alpha: float = 5.0

    def __check_init__(self):
        _check_alpha(self.alpha)

    def derivative(self, x):
        return 0.5 * self.alpha * jnp.exp(-self.alpha * jnp.abs(x))


class StraightThrough(AbstractSurrogate):
    """Straight-through estimator (Bengio et al. 2013): $\\sigma'(x) = 1$."""

    def derivative(self, x):
        return jnp.ones_like(x)


class Custom(AbstractSurrogate):
    """A surrogate defined by its derivative, in one line.

    ```python
    gauss = snnx.spikes.Custom(lambda x: jnp.exp(-0.5 * x**2))
    ```

    **Arguments:**

    - `fn`: a function mapping the threshold-centred membrane `x` to $\\sigma'(x)$,
        elementwise, returning an array shaped like `x`.
    """

    fn: Callable[[Array], Array] = eqx.field(static=True)

    def __check_init__(self):
        if not callable(self.fn):
            raise TypeError(
                f"`fn` must be a function x -> surrogate derivative, got {type(self.fn).__name__}."
            )

    def derivative(self, x):
        d = jnp.asarray(self.fn(x))
        if d.shape != x.shape:
            raise ValueError(
                f"The custom surrogate derivative `fn` must return an array shaped like its "
                f"input {x.shape}, got {d.shape}; write it elementwise."
            )
        return d


class EscapeNoise(AbstractSurrogate):
    """Stochastic (escape-noise) spiking: spike with probability $s(x / T)$.

    $$ P(\\text{spike}) = \\frac{1}{1 + e^{-x/T}} $$

    The sample is drawn as $H(x - T\\,\\mathrm{logit}(u))$ with $u \\sim U(0, 1)$, and its
    gradient is that of the spike probability, $s'(x/T)/T$ (the escape-noise surrogate of
    Gardner, Sporea & Grüning 2015; Ma et al. 2023). A `key` is required.

    **Arguments:**

    - `temperature`: the noise scale $T > 0$; small values approach deterministic spiking.
    """

    temperature: float = 0.1

    def __check_init__(self):
        if isinstance(self.temperature, (int, float)) and not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0, got {self.temperature}.")

    def derivative(self, x):
        s = jax.nn.sigmoid(x / self.temperature)
        return s * (1.0 - s) / self.temperature

    def __call__(self, x, *, key=None):
        if key is None:
            raise ValueError(
                "`EscapeNoise` spikes at random and needs a `key`: pass `key=` to the neuron "
                "call or to `snnx.run(..., key=jax.random.key(0))`."
            )
        x = jnp.asarray(x)
        u = jax.random.uniform(key, x.shape, x.dtype, minval=1e-7, maxval=1.0 - 1e-7)
        threshold_shift = self.temperature * (jnp.log(u) - jnp.log1p(-u))
        return heaviside(x - threshold_shift, self.derivative(x))
