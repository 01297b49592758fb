"""`EventPropNetwork`: a stack of `eqx.nn.Linear` + current-based LIF layers trained by
exact gradients (EventProp)."""

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._checks import is_int
from ..layers._abstract import AbstractAllSteps, AbstractStatefulLayer
from ..layers.sequential import Sequential
from ..neurons import CuBaLI, CuBaLIF
from ._closed import Consts
from ._delays import check_delays, delayed_projection
from ._layer import LayerOut, Spec, apply_layer


class EventPropState(NamedTuple):
    """What an `EventPropNetwork` reports about a run (its "state" for `snnx.run`).

    - `counts`: one `(N,)` float array of spike counts per layer (a spiking readout
        included; zeros for a non-spiking one). Differentiable in the EventProp sense: a
        penalty on them acts in the adjoint (see `snnx.eventprop.count_penalty`).
    - `overflow`: one int per layer, spikes past the per-neuron capacity.
    - `late`: one int per layer, spikes the grid delayed to the next step.
    - `lost`: one int per layer, input arrivals (spike x synapse) that a synaptic delay put
        past the trial end (0 without delays).
    - `clamped`: one int per layer, negative (or NaN) delays used as 0.
    """

    counts: tuple[Array, ...]
    overflow: tuple[Array, ...]
    late: tuple[Array, ...]
    lost: tuple[Array, ...]
    clamped: tuple[Array, ...]


class EventPropResult(NamedTuple):
    """`EventPropNetwork.simulate`: every layer's `LayerOut` and the readout array."""

    layers: tuple[LayerOut, ...]
    readout: Array


_APART = 0.05  # relative gap of tau_syn and tau_mem above which the plain closed form is used


def _time_constants_apart(neuron) -> bool | None:
    """Whether every neuron's `tau_syn` and `tau_mem` differ by at least 5% (decided on the
    host; None when they are traced)."""
    ts, tm = (jax.lax.stop_gradient(neuron._get(name)) for name in ("tau_syn", "tau_mem"))
    if isinstance(ts, jax.core.Tracer) or isinstance(tm, jax.core.Tracer):
        return None
    ts, tm = np.asarray(ts, np.float64), np.asarray(tm, np.float64)
    return bool(np.all(np.abs(ts - tm) >= _APART * np.maximum(ts, tm)))


def _consts(neuron, n: int, dtype, apart: bool = False) -> Consts:
    def get(name):
        return jnp.broadcast_to(jax.lax.stop_gradient(neuron._get(name)), (n,)).astype(dtype)

    ts, tm = get("tau_syn"), get("tau_mem")
    spiking = isinstance(neuron, CuBaLIF)
    th = get("v_threshold") if spiking else jnp.full((n,), jnp.inf, dtype)
    vr = get("v_reset") if spiking else jnp.zeros((n,), dtype)
    q = None
    if apart:
        q = eqx.error_if(
            ts / (ts - tm), jnp.abs(ts - tm) < _APART * jnp.maximum(ts, tm),
            "EventPropNetwork: a neuron's time constants were changed after the network was "
            "built (now within 5% of each other); rebuild the EventPropNetwork.")
    return Consts(ts, tm, get("r"), get("v_leak"), th, vr, get("w_in") / ts, q)


def _check_layers(layers, recurrent, capacity):
    layers = tuple(layers)
    if len(layers) < 2 or len(layers) % 2:
        raise ValueError(
            "`layers` must alternate `eqx.nn.Linear` and neuron: [Linear, CuBaLIF, Linear, "
            f"CuBaLIF or CuBaLI, ...]; got {len(layers)} layers."
        )
    linears, neurons = layers[0::2], layers[1::2]
    for i, lin in enumerate(linears):
        if not isinstance(lin, eqx.nn.Linear) or not is_int(lin.in_features) or not is_int(
            lin.out_features
        ):
            raise TypeError(
                f"`layers[{2 * i}]` must be an `eqx.nn.Linear` with integer sizes, got "
                f"{type(lin).__name__}."
            )
        if i and lin.in_features != linears[i - 1].out_features:
            raise ValueError(
                f"`layers[{2 * i}]` takes {lin.in_features} inputs but the layer before has "
                f"{linears[i - 1].out_features} neurons."
            )
    for i, nrn in enumerate(neurons):
        last = i == len(neurons) - 1
        ok = isinstance(nrn, CuBaLIF) or (last and isinstance(nrn, CuBaLI))
        if not ok:
            raise TypeError(
                f"`layers[{2 * i + 1}]` must be an `snnx.CuBaLIF`"
                + (" (or an `snnx.CuBaLI` readout)" if last else "")
                + f", got {type(nrn).__name__}: EventProp here needs current-based neurons."
            )
        if nrn.trainable:
            raise ValueError(
                f"`layers[{2 * i + 1}]` has trainable neuron parameters "
                f"{sorted(nrn.trainable)}: EventProp computes gradients for the weights and "
                f"biases only; build the neuron with `trainable=()`."
            )
        if isinstance(nrn, CuBaLIF) and nrn.reset_mode == "none":
            raise ValueError(
                f"`layers[{2 * i + 1}]` has `reset_mode='none'`; EventProp needs a reset "
                f"('subtract' or 'to_value', the same at the threshold)."
            )
        if nrn.dt != neurons[0].dt:
            raise ValueError(
                f"`layers[{2 * i + 1}]` has `dt={nrn.dt}` but `layers[1]` has "
                f"`dt={neurons[0].dt}`: all layers share one time grid."
            )
    n_layers = len(neurons)
    if recurrent is None:
        recurrent = (None,) * n_layers
    recurrent = tuple(recurrent)
    if len(recurrent) != n_layers:
        raise ValueError(
            f"`recurrent` needs one entry (a matrix or None) per neuron layer ({n_layers}), "
            f"got {len(recurrent)}."
        )
    rec = []
    for i, (lin, w) in enumerate(zip(linears, recurrent)):
        if w is not None:
            w = jnp.asarray(w)
            n = lin.out_features
            if w.shape != (n, n):
                raise ValueError(
                    f"`recurrent[{i}]` must have shape ({n}, {n}), got {w.shape}."
                )
            if not isinstance(neurons[i], CuBaLIF):
                raise ValueError(f"`recurrent[{i}]` is given for a non-spiking readout.")
        rec.append(w)
    caps = capacity if isinstance(capacity, (tuple, list)) else (capacity,) * n_layers
    if len(caps) != n_layers or not all(is_int(c) and c >= 1 for c in caps):
        raise ValueError(
            f"`capacity` must be an int >= 1 (spikes stored per neuron) or one such int per "
            f"layer ({n_layers}), got {capacity!r}."
        )
    return linears, neurons, tuple(rec), tuple(int(c) for c in caps)


class EventPropNetwork(AbstractStatefulLayer, AbstractAllSteps):
    r"""A feed-forward (optionally recurrent) current-based LIF network with exact gradients.

    The network is the continuous-time system of `snnx.CuBaLIF` ($\tau_s \dot i = -i +
    w_\text{in} I$, $\tau_m \dot v = v_\text{leak} - v + r i$, spike at $v = v_\text{th}$,
    reset to $v_\text{reset}$). Input step `k` of `xs` is a Dirac input at time `k dt` (the
    synaptic current jumps by $w_\text{in}(W x_k + b)/\tau_s$); the bias of every
    `eqx.nn.Linear` arrives the same way at every grid time. Hidden spikes occur at exact
    times: between grid points the linear system is solved in closed form and a crossing is
    located by bisection and Newton steps on the closed-form membrane, and a spike reaches
    the next layer at its exact time (`snnx.ode.simulate_layers` simulates the same system).
    Recurrent weights deliver a spike after a delay of exactly `dt`.

    Gradients are EventProp's (Wunderlich & Pehle 2021): a `jax.custom_vjp` whose backward
    pass integrates the adjoint $(\lambda_V, \lambda_I)$ backwards in closed form with a jump
    at every stored spike (using the synaptic current at the spike, i.e. $\dot v$ at
    threshold). Only per-spike data are stored (time, grid step, current; `capacity` per
    neuron), not per-step state. The gradient is exact for a loss on spike times and on the
    sampled membrane of the readout, and is **blind to spikes appearing or disappearing**:
    it is the derivative of the loss with the set of spikes held fixed, so a spike about to
    be created (the membrane just below threshold) or removed (grazing the threshold) is
    invisible until it happens, and a neuron that never spikes passes no gradient to its
    incoming weights through spike times (its weights get gradient only from a voltage loss
    on it, or from a spike-count penalty, which lifts a silent neuron's weights: see
    `snnx.eventprop.count_penalty`). At a grazing crossing ($\dot v \to 0$) the gradient
    becomes large.

    Resolution limits (counted, never silent): spikes past `capacity` reset the neuron but
    are neither stored nor sent on (`overflow`); a second crossing within one step is moved
    to the start of the next step (`late`); in a layer with in-step input spikes a crossing
    that returns below threshold before the step ends is not seen (keep `dt` well below the
    time constants).

    Delays (Mészáros, Knight & Nowotny 2025): with `delays[l]` given, a spike of neuron `i`
    of the layer below at time $t$ reaches neuron `j` of layer `l` at $t + d_{ji}$, at its
    exact time (an in-step event with its own offset on every synapse); on the first layer
    input step `k` arrives at $k\,dt + d_{ji}$. The gradient of $d_{ji}$ is the
    arrival-time derivative of the adjoint summed over the arrivals on that synapse, exact
    like the weights' (same blindness to spikes appearing or disappearing). An arrival at or
    after the trial end `T * dt` has no effect (`lost`, counted and warned). A negative (or
    NaN) delay, e.g. after an optimiser step, acts as 0 with zero gradient (`clamped`,
    counted and warned): project after each step with `snnx.eventprop.clip_delays`.
    Cost: a hidden projection with delays reads two arrival slots per synapse and step
    (`bench/eventprop.py --delays`: a training step x2.8-3.5 with delays into a 10-neuron
    readout from 128 hidden); delays on the first projection turn its dense input into
    `N x M` in-step events per step in place of the closed-form aligned step (x23-30 for
    100 -> 128): use them on small inputs. Without `delays` nothing changes (same numbers and
    cost). Recurrent weights keep their delay of exactly `dt`.

    **Arguments:**

    - `layers`: `[eqx.nn.Linear, snnx.CuBaLIF, eqx.nn.Linear, snnx.CuBaLIF, ...]`; the last
        neuron may be an `snnx.CuBaLI` (a non-spiking membrane readout). Neuron parameters
        must not be trainable; all neurons share `dt`; `tau_syn == tau_mem` is allowed (the closed
        form takes its limit).
    - `capacity`: spikes stored per neuron (an int, or one per layer).
    - `recurrent`: None, or one `(N, N)` matrix or None per neuron layer.
    - `delays`: None, or one entry per neuron layer: None or an `(N_out, N_in)` float array
        of transmission delays (>= 0, in the time unit of `dt`, real-valued) on the
        projection into that layer. Trainable leaves with exact gradients (see "Delays").
    - `n_bisect`, `n_newton`: root-finding iterations per crossing (defaults locate a spike
        to float64 precision).

    **Raises:**

    `TypeError`/`ValueError` naming the argument for anything above that does not hold.
    """

    linears: tuple[eqx.nn.Linear, ...]
    neurons: tuple[CuBaLIF | CuBaLI, ...]
    recurrent: tuple[Array | None, ...]
    delays: tuple[Array | None, ...]
    capacity: tuple[int, ...] = eqx.field(static=True)
    n_bisect: int = eqx.field(static=True)
    n_newton: int = eqx.field(static=True)
    apart: tuple[bool, ...] = eqx.field(static=True)

    def __init__(self, layers: Sequence, *, capacity, recurrent=None, delays=None,
                 n_bisect: int = 12, n_newton: int = 4):
        self.linears, self.neurons, self.recurrent, self.capacity = _check_layers(
            layers, recurrent, capacity
        )
        self.delays = check_delays(delays, self.linears, self.neurons[0].dt)
        for name, val in (("n_bisect", n_bisect), ("n_newton", n_newton)):
            if not (is_int(val) and val >= 0) or (name == "n_bisect" and val < 1):
                raise ValueError(f"`{name}` must be an int >= {int(name == 'n_bisect')}, "
                                 f"got {val!r}.")
        self.n_bisect, self.n_newton = int(n_bisect), int(n_newton)
        # which closed form each layer uses (see `_closed.kernels`): fixed here, where the
        # time constants are concrete, re-decided in `simulate` whenever they are
        self.apart = tuple(bool(_time_constants_apart(nrn)) for nrn in self.neurons)

    @property
    def dt(self) -> float:
        return self.neurons[0].dt

    @property
    def spiking_readout(self) -> bool:
        return isinstance(self.neurons[-1], CuBaLIF)

    def to_sequential(self) -> Sequential:
        """The same layers as an `snnx.Sequential` (discrete-time BPTT; feed-forward only).

        A projection with `delays` becomes an `snnx.layers.DelayedLinear` with the delays
        rounded to whole steps (`round(d / dt)`; a warning reports how many moved and by how
        much at most), followed by its bias (`eqx.nn.Lambda`).

        **Raises:**

        `ValueError` for a network with `recurrent` weights.
        """
        if any(w is not None for w in self.recurrent):
            raise ValueError("`to_sequential` has no recurrent form here; use a network "
                             "without `recurrent` weights.")
        layers = []
        for i, (lin, nrn, d) in enumerate(zip(self.linears, self.neurons, self.delays)):
            if d is None:
                layers += [lin, nrn]
                continue
            layers += delayed_projection(i, lin, d, self.dt) + [nrn]
        return Sequential(layers)

    def simulate(self, xs) -> EventPropResult:
        """Run one sample and return every layer's spikes (and the readout's membrane).

        **Arguments:**

        - `xs`: `(T, n_in)` input, step `k` a Dirac input at time `k dt` (spikes or any
            real amplitudes).

        **Returns:**

        An `EventPropResult`. Warns (outside `jit`) when spikes overflowed the capacity or
        were delayed by the grid; the counts are in each `LayerOut`.

        **Raises:**

        `ValueError` if `xs` is not `(T, n_in)`.
        """
        xs = jnp.asarray(xs)
        n_in = self.linears[0].in_features
        if xs.ndim != 2 or xs.shape[1] != n_in or xs.shape[0] < 1:
            raise ValueError(
                f"`xs` must have shape (T, {n_in}) for one sample (batch with `jax.vmap`), "
                f"got {xs.shape}."
            )
        if not jnp.issubdtype(xs.dtype, jnp.floating):
            xs = xs.astype(jnp.float32)
        T = xs.shape[0]
        outs = []
        inp = xs
        n_layers = len(self.neurons)
        for i, (lin, nrn, wrec, dly) in enumerate(zip(self.linears, self.neurons,
                                                       self.recurrent, self.delays)):
            n = lin.out_features
            w = lin.weight
            dtype = jnp.result_type(w.dtype, xs.dtype)
            b = lin.bias if lin.bias is not None else jnp.zeros((n,), dtype)
            spec = Spec(T, float(self.dt), self.capacity[i], i == 0, wrec is not None,
                        isinstance(nrn, CuBaLIF), i == n_layers - 1, dly is not None,
                        self.n_bisect, self.n_newton)
            w = w.astype(dtype)
            apart = _time_constants_apart(nrn)
            apart = self.apart[i] if apart is None else apart
            out = apply_layer(spec, w, b.astype(dtype), None if wrec is None else
                              wrec.astype(dtype), None if dly is None else dly.astype(dtype),
                              _consts(nrn, n, dtype, apart), inp)
            outs.append(out)
            inp = (out.times, out.steps)
        last = outs[-1]
        readout = last.times.T if self.spiking_readout else last.v
        _warn_if_lossy(outs)
        return EventPropResult(tuple(outs), readout)

    def readout(self, xs) -> Array:
        """`simulate(xs).readout`: `(capacity, n_out)` spike times of a spiking readout
        (row 0: first spikes; `T dt` where none), or the `(T, n_out)` membrane of a `CuBaLI`
        readout."""
        return self.simulate(xs).readout

    def init_state(self, shape, dtype=jnp.float32) -> EventPropState:
        zi = (jnp.zeros((), jnp.int32),) * len(self.linears)
        return EventPropState(
            tuple(jnp.zeros((lin.out_features,), dtype) for lin in self.linears), zi, zi, zi, zi
        )

    def __call__(self, x, state, *, key=None):
        # `snnx.run` traces one step to settle dtypes; running one is an error.
        y = jnp.zeros(jnp.shape(x)[:-1] + self._out_shape(), jnp.result_type(x))
        y = eqx.error_if(y, jnp.ones(jnp.shape(x), bool).any(),
                         "EventPropNetwork runs all steps at once: call `snnx.run(net, xs)` "
                         "(layer-major, the default) or `net.simulate(xs)`, not one step.")
        return y, state

    def _out_shape(self):
        return (self.linears[-1].out_features,)

    def all_steps(self, xs, state, *, keys, context):
        """`snnx.run`'s all-steps form: the readout (`(capacity, n_out)` spike times for a
        spiking readout, `(T, n_out)` membrane for a `CuBaLI` one), the run's
        `EventPropState`, and with `record` that state with a leading axis of length 1 (no
        per-step state is kept)."""
        res = self.simulate(xs)
        st = EventPropState(
            tuple(o.counts.astype(s.dtype) for o, s in zip(res.layers, state.counts)),
            tuple(o.overflow for o in res.layers), tuple(o.late for o in res.layers),
            tuple(o.lost for o in res.layers), tuple(o.clamped for o in res.layers),
        )
        trace = jax.tree.map(lambda a: a[None], st) if context.record else None
        return res.readout, st, trace


def _warn_if_lossy(outs):
    for i, o in enumerate(outs):
        for what, n, fix in (("spikes overflowed the capacity", o.overflow, "raise `capacity`"),
                             ("spikes were delayed to the next grid step", o.late, "lower `dt`"),
                             ("input arrivals fell past the trial end through the synaptic "
                              "delays", o.lost, "lower `delays` or lengthen the input"),
                             ("negative (or NaN) delays were used as 0", o.clamped,
                              "project them after each step with "
                              "`snnx.eventprop.clip_delays`")):
            if isinstance(n, jax.core.Tracer):
                continue
            if int(n) > 0:
                warnings.warn(
                    f"EventPropNetwork layer {i}: {int(n)} {what} (no gradient for them; "
                    f"`overflow`/`late`/`lost`/`clamped` in the result count them): {fix}.",
                    stacklevel=4,
                )
