r"""Feedback alignment and Phaseless Alignment Learning (PAL) for a rate-based network.

A layered rate network $r_0 = x$, $u_l = W_l r_{l-1} + b_l$, $r_l = \phi(u_l) + \xi_l$ (hidden
layers, with noise $\xi_l \sim \mathcal N(0, \sigma^2)$), $y = u_L$ (linear output). The
errors are sent down through feedback matrices $B_l$ (shape of $W_{l+1}^\top$) instead of
the transposed forward weights:

$$ \delta_L = \partial\ell/\partial y, \qquad
   \delta_l = (B_l\, \delta_{l+1}) \odot \phi'(u_l), \qquad
   \Delta W_l \propto -\delta_l r_{l-1}^\top $$

With $B_l = W_{l+1}^\top$ this is backpropagation; with a fixed random $B_l$ it is feedback
alignment (Lillicrap et al. 2016). PAL (Max, Kriener, ..., Petrovici 2023, arXiv
2212.10249) learns $B_l$ at the same time, from the network's own noise: the noise $\xi_l$
of a layer reaches the layer above through $W_{l+1}$, and correlating it with the high-pass
filtered rates above recovers $W_{l+1}^\top$,

$$ \Delta B_l = \eta\,(\xi_l\, r^{\text{hp}\,\top}_{l+1} - \alpha B_l) $$

with no separate phases: forward weights (by the feedback-carried error) and feedback
weights (by the noise) learn from the same forward passes.
"""

import abc
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray


class RateNetwork(eqx.Module):
    """A fully connected rate network: hidden layers `activation(W r + b)`, linear output.

    **Arguments:**

    - `sizes`: layer widths `(n_in, n_1, ..., n_out)`, at least two.
    - `key`: PRNG key for the weights (`eqx.nn.Linear`'s initialisation).
    - `activation`: the hidden nonlinearity (elementwise). Default `jnp.tanh`.
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(self, sizes: Sequence[int], *, key: PRNGKeyArray,
                 activation: Callable[[Array], Array] = jnp.tanh):
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(
                f"RateNetwork `sizes` must list at least two positive widths (n_in, ..., "
                f"n_out), got {sizes}."
            )
        if not callable(activation):
            raise TypeError(f"RateNetwork `activation` must be a function, got "
                            f"{type(activation).__name__}.")
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(eqx.nn.Linear(a, b, key=k)
                            for a, b, k in zip(sizes[:-1], sizes[1:], keys))
        self.activation = activation

    def forward(self, x: Array, noise: Sequence[Array] | None = None):
        """Rates and pre-activations of every layer: `(rates, pre)`, `rates[0] = x`,
        `rates[-1]` the output; `noise[l]` is added to hidden layer `l + 1`'s rate."""
        rates, pre = [x], []
        for i, layer in enumerate(self.layers):
            u = layer(rates[-1])
            pre.append(u)
            if i < len(self.layers) - 1:
                r = self.activation(u)
                if noise is not None:
                    r = r + noise[i]
                rates.append(r)
            else:
                rates.append(u)
        return rates, pre

    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """The noise-free output for one sample `x` `(n_in,)`."""
        return self.forward(x)[0][-1]


def init_feedback(network: RateNetwork, *, key: PRNGKeyArray, scale: float = 1.0
                  ) -> tuple[Array, ...]:
    """Random feedback matrices $B_l$ shaped like $W_{l+1}^\\top$, one per hidden layer.

    **Arguments:**

    - `network`: the `RateNetwork`.
    - `key`: PRNG key. Entries are uniform with the same range as `eqx.nn.Linear`'s
        initialisation of $W_{l+1}$, times `scale`.

    **Returns:**

    A tuple of `len(network.layers) - 1` arrays `(n_l, n_{l+1})`.
    """
    keys = jax.random.split(key, max(len(network.layers) - 1, 1))
    out = []
    for k, layer in zip(keys, network.layers[1:]):
        lim = scale / math.sqrt(layer.in_features)
        out.append(jax.random.uniform(k, (layer.in_features, layer.out_features),
                                      minval=-lim, maxval=lim, dtype=layer.weight.dtype))
    return tuple(out)


def _check_feedback(network: RateNetwork, feedback) -> tuple[Array, ...]:
    feedback = tuple(feedback)
    shapes = [layer.weight.T.shape for layer in network.layers[1:]]
    got = [jnp.shape(b) for b in feedback]
    if got != shapes:
        raise ValueError(
            f"`feedback` must hold one matrix per hidden layer shaped like the next layer's "
            f"transposed weights, {shapes}, got {got}; make it with "
            f"`snnx.learn.init_feedback(network, key=...)`."
        )
    return feedback


def feedback_alignment_grad(network: RateNetwork, feedback, x, target, loss_fn, *,
                            noise=None):
    """Loss and weight updates of one sample, errors carried down by `feedback`.

    **Arguments:**

    - `network`: a `RateNetwork`.
    - `feedback`: one matrix per hidden layer, shaped like the next layer's $W^\\top$
        (`init_feedback`); pass `tuple(l.weight.T for l in network.layers[1:])` for
        backpropagation.
    - `x`: one input `(n_in,)`; `target`: passed to `loss_fn`.
    - `loss_fn`: `loss_fn(y, target) -> scalar` of the output `y`.
    - `noise`: optional noise added to each hidden layer's rate.

    **Returns:**

    `(loss, grads, rates)`: the loss, a PyTree shaped like `eqx.filter(network,
    eqx.is_inexact_array)` (weights and biases; use it as an optax gradient), and every
    layer's rates (`rates[0] = x`).
    """
    feedback = _check_feedback(network, feedback)
    rates, pre = network.forward(x, noise)
    loss, delta = jax.value_and_grad(loss_fn)(rates[-1], target)
    n = len(network.layers)
    deltas = [None] * n
    deltas[-1] = delta
    for i in range(n - 2, -1, -1):
        slope = jax.vmap(jax.grad(network.activation))(pre[i])
        deltas[i] = (jax.lax.stop_gradient(feedback[i]) @ deltas[i + 1]) * slope
    grads = jax.tree.map(jnp.zeros_like, eqx.filter(network, eqx.is_inexact_array))
    for i, layer in enumerate(network.layers):
        grads = eqx.tree_at(lambda g, i=i: g.layers[i].weight, grads,
                            jnp.outer(deltas[i], rates[i]).astype(layer.weight.dtype))
        if layer.bias is not None:
            grads = eqx.tree_at(lambda g, i=i: g.layers[i].bias, grads,
                                deltas[i].astype(layer.bias.dtype))
    return loss, grads, tuple(rates)


class AbstractFeedbackRule(eqx.Module):
    """How the feedback matrices change: `Fixed` (feedback alignment) or `PAL`.

    Both run the same noisy network: `noise` is the standard deviation of the noise added
    to every hidden rate, `steps` how many noisy passes each input gets (the micro-steps
    over which the high-pass filter runs), `tau_hp` the filter's time constant in steps.
    """

    noise: eqx.AbstractVar[float]
    steps: eqx.AbstractVar[int]
    tau_hp: eqx.AbstractVar[float]

    @abc.abstractmethod
    def update(self, feedback: tuple[Array, ...], correlation: tuple[Array, ...]
               ) -> tuple[Array, ...]:
        """The new feedback from the measured $\\langle \\xi_l r^{hp\\top}_{l+1}\\rangle$."""


def _check_rule(cls, noise, steps, tau_hp):
    if not (math.isfinite(float(noise)) and float(noise) >= 0):
        raise ValueError(f"{cls} `noise` must be a finite number >= 0, got {noise}.")
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"{cls} `steps` must be an int >= 1, got {steps!r}.")
    if not (math.isfinite(float(tau_hp)) and float(tau_hp) >= 1):
        raise ValueError(f"{cls} `tau_hp` must be a number >= 1 (steps), got {tau_hp}.")


class Fixed(AbstractFeedbackRule):
    """Fixed feedback: feedback alignment with random $B$ (or backprop with $B = W^\\top$)."""

    noise: float = eqx.field(default=0.0, static=True)
    steps: int = eqx.field(default=1, static=True)
    tau_hp: float = eqx.field(default=10.0, static=True)

    def __check_init__(self):
        _check_rule("Fixed", self.noise, self.steps, self.tau_hp)

    def update(self, feedback, correlation):
        return feedback


class PAL(AbstractFeedbackRule):
    r"""Phaseless Alignment Learning: $\Delta B_l = \eta(\langle\xi_l r^{hp\top}_{l+1}\rangle
    - \alpha B_l)$, applied at every training step together with the forward update.

    **Arguments:**

    - `eta`: feedback learning rate $\eta > 0$. Default 2.
    - `alpha`: weight decay $\alpha \ge 0$; $B$ settles at the noise correlation over
        $\alpha$, i.e. $\approx \sigma^2 W^\top \operatorname{diag}(\phi')/\alpha$, so
        $\alpha \approx \sigma^2$ keeps $B$ at the scale of $W^\top$. Default 0.01.
    - `noise`: noise standard deviation $\sigma$ on every hidden rate. Default 0.1.
    - `steps`: noisy passes per input. Default 8.
    - `tau_hp`: high-pass time constant in steps. Default 4.
    """

    eta: float = eqx.field(default=2.0, static=True)
    alpha: float = eqx.field(default=0.01, static=True)
    noise: float = eqx.field(default=0.1, static=True)
    steps: int = eqx.field(default=8, static=True)
    tau_hp: float = eqx.field(default=4.0, static=True)

    def __check_init__(self):
        _check_rule("PAL", self.noise, self.steps, self.tau_hp)
        if not (math.isfinite(float(self.eta)) and float(self.eta) > 0):
            raise ValueError(f"PAL `eta` must be a finite number > 0, got {self.eta}.")
        if not (math.isfinite(float(self.alpha)) and float(self.alpha) >= 0):
            raise ValueError(f"PAL `alpha` must be a finite number >= 0, got {self.alpha}.")

    def update(self, feedback, correlation):
        return pal_update(feedback, correlation, eta=self.eta, alpha=self.alpha)


def pal_update(feedback, correlation, *, eta: float, alpha: float) -> tuple[Array, ...]:
    r"""PAL's feedback update $B_l + \eta\,(C_l - \alpha B_l)$ for each layer.

    **Arguments:**

    - `feedback`: the matrices $B_l$ `(n_l, n_{l+1})`.
    - `correlation`: $C_l = \langle \xi_l\, r^{hp\top}_{l+1} \rangle$, same shapes (e.g.
        `jnp.outer(xi, r_hp)` for one sample).
    - `eta`, `alpha`: the rate and the decay.

    **Returns:**

    The new feedback matrices.
    """
    return tuple(b + eta * (c - alpha * b) for b, c in zip(feedback, correlation))


def feedback_step(network: RateNetwork, feedback, xs, targets, loss_fn,
                  rule: AbstractFeedbackRule, *, key: PRNGKeyArray):
    """One training step on a batch: forward updates and (for PAL) feedback updates at once.

    Every input is presented for `rule.steps` noisy passes. Each pass gives a forward
    update (errors through the current `feedback`) and, per hidden layer, the product of
    its noise with the high-pass filtered rates of the layer above
    ($r^{hp}_k = r_k - \\bar r_{k-1}$ with the low-pass
    $\\bar r_k = \\bar r_{k-1} + (r_k - \\bar r_{k-1})/\\tau_{hp}$).
    Both are averaged over passes and the batch.

    **Arguments:**

    - `network`, `feedback`, `loss_fn`: as for `feedback_alignment_grad`.
    - `xs`, `targets`: a batch `(batch, n_in)` and its targets (leading batch axis).
    - `rule`: `Fixed(...)` or `PAL(...)`.
    - `key`: PRNG key for the noise.

    **Returns:**

    `(loss, grads, new_feedback)`: the mean loss, the mean forward update (shaped like
    `eqx.filter(network, eqx.is_inexact_array)`, for optax), and the feedback after the
    rule's update.
    """
    if not isinstance(rule, AbstractFeedbackRule):
        raise TypeError(f"`rule` must be `snnx.learn.Fixed(...)` or `snnx.learn.PAL(...)`, "
                        f"got {type(rule).__name__}.")
    feedback = _check_feedback(network, feedback)
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != network.layers[0].in_features:
        raise ValueError(f"`xs` must be a batch (batch, {network.layers[0].in_features}), got "
                         f"shape {xs.shape}.")
    hidden = [layer.out_features for layer in network.layers[:-1]]
    dtype = network.layers[0].weight.dtype
    lam = 1.0 / rule.tau_hp

    def one(x, target, k):
        def body(carry, k_step):
            lowpass, first = carry
            noise = [rule.noise * jax.random.normal(kk, (n,), dtype)
                     for kk, n in zip(jax.random.split(k_step, len(hidden)), hidden)]
            loss, grads, rates = feedback_alignment_grad(network, feedback, x, target, loss_fn,
                                                         noise=noise)
            above = rates[2:]
            high = [jnp.where(first, 0.0, r - lp) for r, lp in zip(above, lowpass)]
            lowpass = [jnp.where(first, r, lp + lam * (r - lp)) for r, lp in zip(above, lowpass)]
            corr = tuple(jnp.outer(xi, h) for xi, h in zip(noise, high))
            return (lowpass, jnp.asarray(False)), (loss, grads, corr)

        init = ([jnp.zeros((layer.out_features,), dtype) for layer in network.layers[1:]],
                jnp.asarray(True))
        _, (loss, grads, corr) = jax.lax.scan(body, init, jax.random.split(k, rule.steps))
        # the first pass has no filtered past: it trains the forward weights only
        n_corr = max(rule.steps - 1, 1)
        return (loss.mean(), jax.tree.map(lambda g: g.mean(0), grads),
                tuple(c.sum(0) / n_corr for c in corr))

    keys = jax.random.split(key, xs.shape[0])
    loss, grads, corr = jax.vmap(one)(xs, targets, keys)
    corr = tuple(c.mean(0) for c in corr)
    return loss.mean(), jax.tree.map(lambda g: g.mean(0), grads), rule.update(feedback, corr)


def alignment_angle(feedback, network: RateNetwork) -> Array:
    """The angle in degrees between each $B_l$ and $W_{l+1}^\\top$ (flattened), `(L-1,)`.

    **Arguments:**

    - `feedback`: the feedback matrices.
    - `network`: the `RateNetwork` whose forward weights they should align with.

    **Returns:**

    One angle per feedback matrix: 0 is perfect alignment, 90 unrelated.
    """
    feedback = _check_feedback(network, feedback)
    out = []
    for b, layer in zip(feedback, network.layers[1:]):
        w = layer.weight.T.ravel()
        b = b.ravel()
        cos = jnp.dot(b, w) / (jnp.linalg.norm(b) * jnp.linalg.norm(w))
        out.append(jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0))))
    return jnp.stack(out)
