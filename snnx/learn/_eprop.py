r"""e-prop (Bellec et al. 2020): online gradients from eligibility traces and learning signals.

The network is one spiking layer (optionally recurrent) and a leaky readout,

```python
snnx.Sequential([eqx.nn.Linear(n_in, n), neuron, eqx.nn.Linear(n, n_out), snnx.LI(tau)])
snnx.Sequential([eqx.nn.Linear(n_in, n), snnx.Recurrent(neuron, n), eqx.nn.Linear(n, n_out),
                 snnx.LI(tau)])
```

trained on a loss that is a sum over time steps, $E = \frac1T\sum_t \ell(y_t, \text{target})$.
For a weight $W_{ij}$ into hidden neuron $i$ from presynaptic input $j$ (an input, the
neuron's own layer one step earlier, or 1 for a bias), the neuron's hidden state $h_t$
(e.g. `v`, or `v, a` for ALIF) carries an *eligibility vector*

$$ \epsilon_t = \frac{\partial h_t}{\partial h_{t-1}} \epsilon_{t-1}
                + \frac{\partial h_t}{\partial I_t} x_{t,j}, \qquad
   e_t = \frac{\partial z_t}{\partial h_{t-1}} \epsilon_{t-1}
         + \frac{\partial z_t}{\partial I_t} x_{t,j} $$

where the local derivatives are the neuron's own step differentiated forward (`jax.jvp`:
surrogate slopes, the adaptive threshold's extra component, the reset unless detached), so
any elementwise neuron (LIF, ALIF, CuBaLIF, a user's own) gets its exact eligibility. The
learning signal is $L_{t,i} = \sum_k B_{ik}\, c_k\, \partial\ell/\partial y_{t,k}$ with
feedback $B = W_\text{out}^\top$ (`Symmetric`) or a fixed random matrix
(`RandomFeedback`), and $c$ the readout's input gain. The readout's memory is handled by
filtering the eligibility with the readout's decay $\kappa$ ($\bar e_t = \kappa \bar e_{t-1}
+ e_t$), and the gradient is $\frac1T \sum_t L_t \bar e_t$.

**Where this is exact.** With a non-recurrent hidden layer, symmetric feedback and a
readout decay shared by all outputs, e-prop's gradient *equals* BPTT's (`jax.grad`
through `snnx.run`) for any neuron: nothing is truncated. With recurrence, e-prop drops the
paths through other neurons' spikes (the recurrent input is treated as a given input), so
it equals BPTT through a network whose recurrent input is `stop_gradient`-ed; with random
feedback it is an approximation of both.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from ..layers._abstract import AbstractStatefulLayer
from ..layers._util import init_layer_state
from ..layers.recurrent import Recurrent
from ..layers.sequential import Sequential
from ..neurons import LI


class AbstractFeedback(eqx.Module):
    """How the output error reaches the hidden neurons: a matrix `(hidden, outputs)`."""

    @abc.abstractmethod
    def matrix(self, w_out: Array) -> Array:
        """The feedback matrix $B$ for the readout weights `w_out` `(outputs, hidden)`."""


class Symmetric(AbstractFeedback):
    """Symmetric feedback $B = W_\\text{out}^\\top$ (e-prop's exact case; biologically
    implausible weight transport)."""

    def matrix(self, w_out):
        return w_out.T


class RandomFeedback(AbstractFeedback):
    r"""Fixed random feedback (Lillicrap et al. 2016's feedback alignment; "random e-prop").

    **Arguments:**

    - `hidden`, `outputs`: the shape of $B$, `(hidden, outputs)`.
    - `key`: PRNG key; entries are drawn $\mathcal N(0, \text{scale}^2/\text{outputs})$.
    - `scale`: see `key`. Default 1.
    - `matrix`: a given $B$ `(hidden, outputs)` instead of `key`.
    """

    feedback: Array

    def __init__(self, hidden: int | None = None, outputs: int | None = None, *,
                 key: PRNGKeyArray | None = None, scale: float = 1.0, matrix=None):
        if matrix is None:
            if key is None or hidden is None or outputs is None:
                raise ValueError(
                    "RandomFeedback needs `hidden`, `outputs` and `key` (a random matrix) or "
                    "`matrix` (a given one)."
                )
            matrix = scale * jax.random.normal(key, (hidden, outputs)) / jnp.sqrt(outputs)
        self.feedback = jnp.asarray(matrix)
        if self.feedback.ndim != 2:
            raise ValueError(
                f"RandomFeedback `matrix` must be 2-D (hidden, outputs), got shape "
                f"{self.feedback.shape}."
            )

    def matrix(self, w_out):
        if self.feedback.shape != w_out.T.shape:
            raise ValueError(
                f"RandomFeedback `matrix` has shape {self.feedback.shape} but the readout "
                f"needs (hidden, outputs) = {w_out.T.shape}."
            )
        return jax.lax.stop_gradient(self.feedback).astype(w_out.dtype)


class EpropState(eqx.Module):
    """What the online e-prop step carries: network states, traces and gradient sums.

    - `neuron`, `readout`: the hidden neurons' and readout's states.
    - `spikes`: the hidden spikes of the last step (the recurrent input).
    - `eligibility`: $\\epsilon$, `(k, hidden, pre)` for a neuron state of `k` arrays;
        `pre` is inputs, 1 (input bias), then with recurrence hidden and 1 (recurrent bias).
    - `filtered`: $\\bar e$, `(hidden, pre)`, the eligibility through the readout filter.
    - `readout_trace`: hidden spikes and 1 through the readout filter, `(hidden + 1,)`.
    - `grad_hidden` `(hidden, pre)`, `grad_out` `(outputs, hidden + 1)`: gradient sums.
    - `loss`: the summed loss; `steps`: steps taken.
    """

    neuron: PyTree[Array]
    readout: PyTree[Array]
    spikes: Array
    eligibility: Array
    filtered: Array
    readout_trace: Array
    grad_hidden: Array
    grad_out: Array
    loss: Array
    steps: Array


class _Parts(eqx.Module):
    w_in: eqx.nn.Linear
    hidden: AbstractStatefulLayer
    w_out: eqx.nn.Linear
    readout: LI
    recurrent: Recurrent | None


def _parts(model) -> _Parts:
    hint = (
        "e-prop `model` must be `snnx.Sequential([eqx.nn.Linear(n_in, n), neuron or "
        "snnx.Recurrent(neuron, n), eqx.nn.Linear(n, n_out), snnx.LI(tau)])`"
    )
    if not (isinstance(model, Sequential) and len(model.layers) == 4):
        raise TypeError(f"{hint}; got {type(model).__name__} with a different structure.")
    w_in, hidden, w_out, readout = model.layers
    if not (isinstance(w_in, eqx.nn.Linear) and isinstance(w_out, eqx.nn.Linear)):
        raise TypeError(f"{hint}; layers 0 and 2 of `model` must be `eqx.nn.Linear`.")
    if not isinstance(readout, LI):
        raise TypeError(f"{hint}; layer 3 of `model` must be `snnx.LI`, got "
                        f"{type(readout).__name__}.")
    if jnp.size(readout.log_tau) != 1:
        raise ValueError(
            "e-prop filters the eligibility with the readout's decay, so the readout `tau` of "
            "`model` must be one scalar shared by all outputs."
        )
    recurrent = hidden if isinstance(hidden, Recurrent) else None
    neuron = hidden.neuron if recurrent is not None else hidden
    if not isinstance(neuron, AbstractStatefulLayer) or isinstance(neuron, Sequential):
        raise TypeError(f"{hint}; layer 1 of `model` must be a neuron, got "
                        f"{type(neuron).__name__}.")
    return _Parts(w_in, neuron, w_out, readout, recurrent)


def _pre(parts: _Parts, x, spikes):
    one = jnp.ones((1,), x.dtype)
    if parts.recurrent is None:
        return jnp.concatenate([x, one])
    return jnp.concatenate([x, one, jax.lax.stop_gradient(spikes), one])


def _current(parts: _Parts, x, spikes):
    current = parts.w_in(x)
    if parts.recurrent is not None:
        current = current + _recurrent_weight(parts.recurrent) @ spikes
        if parts.recurrent.bias is not None:
            current = current + parts.recurrent.bias
    return current


def _recurrent_weight(layer: Recurrent) -> Array:
    if layer.zero_diagonal:
        return layer.weight * (1.0 - jnp.eye(layer.size, dtype=layer.weight.dtype))
    return layer.weight


def _local_derivatives(neuron, current, state, key):
    """The neuron's step and its elementwise derivatives (one `jvp` per state array and the
    input): `(z, new_state, dz/dh (k, n), dz/dI (n,), dh'/dh (k, k, n), dh'/dI (k, n))`."""
    leaves, treedef = jax.tree.flatten(state)

    def step(current, leaves):
        z, new = neuron(current, jax.tree.unflatten(treedef, leaves), key=key)
        return z, jax.tree.leaves(new)

    z, new_leaves = step(current, leaves)
    k = len(leaves)

    def directional(i):
        t_in = jnp.where(i == k, 1.0, 0.0).astype(current.dtype) * jnp.ones_like(current)
        t_leaves = [jnp.where(i == c, 1.0, 0.0).astype(leaf.dtype) * jnp.ones_like(leaf)
                    for c, leaf in enumerate(leaves)]
        _, (dz, dh) = jax.jvp(step, (current, leaves), (t_in, t_leaves))
        return dz, jnp.stack(dh)

    dz, dh = jax.vmap(directional)(jnp.arange(k + 1))  # (k+1, n), (k+1, k, n)
    return z, jax.tree.unflatten(treedef, new_leaves), dz[:k], dz[k], \
        jnp.swapaxes(dh[:k], 0, 1), dh[k]


def eprop_init(model, input_shape: tuple[int, ...], dtype=jnp.float32) -> EpropState:
    """The resting state of an online e-prop pass (`eprop_step`) for one sample.

    **Arguments:**

    - `model`: the network (see `snnx.learn` e-prop: Linear, neuron or Recurrent, Linear,
        `snnx.LI`).
    - `input_shape`: one step's input shape, `(n_in,)`.
    - `dtype`: the state's float dtype. Default float32.

    **Returns:**

    An `EpropState` with zero traces and gradient sums.

    **Raises:**

    `TypeError`/`ValueError` if `model` does not have that structure.
    """
    parts = _parts(model)
    n_in = parts.w_in.in_features
    if tuple(input_shape) != (n_in,):
        raise ValueError(f"e-prop `input_shape` must be ({n_in},) for this model, got "
                         f"{tuple(input_shape)}.")
    n, n_out = parts.w_out.in_features, parts.w_out.out_features
    neuron_state = init_layer_state(parts.hidden, (n,), dtype)
    k = len(jax.tree.leaves(neuron_state))
    n_pre = n_in + 1 + (n + 1 if parts.recurrent is not None else 0)
    zeros = lambda *s: jnp.zeros(s, dtype)  # noqa: E731
    return EpropState(
        neuron_state, init_layer_state(parts.readout, (n_out,), dtype), zeros(n),
        zeros(k, n, n_pre), zeros(n, n_pre), zeros(n + 1), zeros(n, n_pre),
        zeros(n_out, n + 1), zeros(), jnp.zeros((), jnp.int32),
    )


def eprop_step(model, state: EpropState, x, target, loss_fn, feedback: AbstractFeedback, *,
               key=None) -> tuple[Array, EpropState]:
    """One online e-prop step: advance the network, the traces and the gradient sums.

    Nothing of the past is kept but `state`: memory is independent of the sequence length.

    **Arguments:**

    - `model`: the network (Linear, neuron or `snnx.Recurrent`, Linear, `snnx.LI`).
    - `state`: an `EpropState` (from `eprop_init` or the previous step).
    - `x`: this step's input `(n_in,)`.
    - `target`: passed to `loss_fn` (e.g. the class label).
    - `loss_fn`: `loss_fn(y, target) -> scalar`, the loss of this step's readout `y`.
    - `feedback`: `snnx.learn.Symmetric()` or `snnx.learn.RandomFeedback(...)`.
    - `key`: PRNG key for a stochastic neuron, or None.

    **Returns:**

    `(y, state)`: this step's readout and the new state.
    """
    parts = _parts(model)
    dtype = state.filtered.dtype
    x = jnp.asarray(x, dtype)
    pre = _pre(parts, x, state.spikes)
    current = _current(parts, x, state.spikes)
    z, neuron_state, dz_dh, dz_di, dh_dh, dh_di = _local_derivatives(
        parts.hidden, current, state.neuron, key)
    eps = state.eligibility
    e = jnp.einsum("cn,cnp->np", dz_dh, eps) + dz_di[:, None] * pre[None, :]
    eps = jnp.einsum("dcn,cnp->dnp", dh_dh, eps) + dh_di[:, :, None] * pre[None, None, :]

    # the readout y_t = kappa y_{t-1} + gain (W_out z_t + b): its decay and gain by jvp
    readout_in = parts.w_out(z)
    (y, readout_state), (gain, _) = jax.jvp(
        lambda i: parts.readout(i, state.readout), (readout_in,), (jnp.ones_like(readout_in),))
    _, (kappa, _) = jax.jvp(
        lambda s: parts.readout(readout_in, s), (state.readout,),
        (jax.tree.map(jnp.ones_like, state.readout),))
    kappa = kappa[0]

    loss, delta = jax.value_and_grad(loss_fn)(y, target)
    signal_out = jax.lax.stop_gradient(gain * delta)  # dE/d(readout input)
    learning_signal = feedback.matrix(parts.w_out.weight) @ signal_out
    filtered = kappa * state.filtered + e
    readout_trace = kappa * state.readout_trace + jnp.concatenate(
        [jax.lax.stop_gradient(z), jnp.ones((1,), dtype)])
    new = EpropState(
        neuron_state, readout_state, z, eps, filtered, readout_trace,
        state.grad_hidden + learning_signal[:, None] * filtered,
        state.grad_out + jnp.outer(signal_out, readout_trace),
        state.loss + loss, state.steps + 1,
    )
    return y, jax.tree.map(lambda a, b: a.astype(b.dtype), new, state)


def eprop_gradients(model, state: EpropState) -> PyTree:
    """The gradient of the time-averaged loss that an online pass has accumulated.

    **Arguments:**

    - `model`: the network the pass ran.
    - `state`: the `EpropState` after the pass.

    **Returns:**

    A PyTree shaped like `eqx.filter(model, eqx.is_inexact_array)`: the e-prop gradients
    on the two `Linear` layers' weights and biases and on the recurrent weights (and bias),
    zeros on every other array (neuron parameters). Feed it to an optax optimiser.
    """
    parts = _parts(model)
    steps = jnp.maximum(state.steps, 1).astype(state.grad_out.dtype)
    g_h, g_o = state.grad_hidden / steps, state.grad_out / steps
    n_in, n = parts.w_in.in_features, parts.w_out.in_features
    grads = jax.tree.map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
    values = {
        (0, "weight"): g_h[:, :n_in], (0, "bias"): g_h[:, n_in],
        (2, "weight"): g_o[:, :n], (2, "bias"): g_o[:, n],
    }
    for (i, name), value in values.items():
        if getattr(model.layers[i], name) is not None:
            grads = eqx.tree_at(lambda g, i=i, name=name: getattr(g.layers[i], name), grads,
                                value.astype(getattr(model.layers[i], name).dtype))
    if parts.recurrent is not None:
        w_rec = g_h[:, n_in + 1:n_in + 1 + n]
        if parts.recurrent.zero_diagonal:
            w_rec = w_rec * (1.0 - jnp.eye(n, dtype=w_rec.dtype))
        grads = eqx.tree_at(lambda g: g.layers[1].weight, grads,
                            w_rec.astype(parts.recurrent.weight.dtype))
        if parts.recurrent.bias is not None:
            grads = eqx.tree_at(lambda g: g.layers[1].bias, grads,
                                g_h[:, -1].astype(parts.recurrent.bias.dtype))
    return grads


def eprop_grad(model, xs, target, loss_fn, *, feedback: AbstractFeedback | None = None,
               key=None) -> tuple[Array, PyTree]:
    """The e-prop loss and gradient of one sequence, computed online (one `lax.scan`).

    The loss is $E = \\frac1T \\sum_t$ `loss_fn(y_t, target)`; no activation of the
    sequence is stored (memory independent of `T`, unlike BPTT). Batch with `jax.vmap` and
    average the gradients.

    **Arguments:**

    - `model`: `snnx.Sequential([eqx.nn.Linear, neuron or snnx.Recurrent, eqx.nn.Linear,
        snnx.LI])`.
    - `xs`: the input sequence `(T, n_in)`.
    - `target`: passed to `loss_fn` at every step.
    - `loss_fn`: `loss_fn(y, target) -> scalar` for one step's readout `y` `(n_out,)`.
    - `feedback`: `Symmetric()` (default) or `RandomFeedback(...)`.
    - `key`: PRNG key for stochastic neurons (one per step is split from it), or None.

    **Returns:**

    `(loss, grads)`: the time-averaged loss and a gradient PyTree shaped like
    `eqx.filter(model, eqx.is_inexact_array)` (see `eprop_gradients`).

    **Raises:**

    `TypeError`/`ValueError` if `model`, `xs` or `feedback` are not of that form.
    """
    feedback = Symmetric() if feedback is None else feedback
    if not isinstance(feedback, AbstractFeedback):
        raise TypeError(
            f"e-prop `feedback` must be `snnx.learn.Symmetric()` or "
            f"`snnx.learn.RandomFeedback(...)`, got {type(feedback).__name__}."
        )
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or not jnp.issubdtype(xs.dtype, jnp.floating):
        raise ValueError(f"e-prop `xs` must be a float array (T, n_in), got shape {xs.shape} "
                         f"and dtype {xs.dtype}; cast spikes with `.astype(jnp.float32)`.")
    dtype = jnp.result_type(xs.dtype, _parts(model).w_in.weight.dtype)
    state = eprop_init(model, xs.shape[1:], dtype)
    keys = None if key is None else jax.random.split(key, xs.shape[0])

    def body(s, inp):
        x, k = inp
        _, s = eprop_step(model, s, x, target, loss_fn, feedback, key=k)
        return s, None

    state, _ = jax.lax.scan(body, state, (xs, keys))
    return state.loss / xs.shape[0], eprop_gradients(model, state)
