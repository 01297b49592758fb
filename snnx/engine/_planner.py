"""The planner: how `snnx.run` runs each layer over a whole sequence.

Every layer is asked what it declares (`snnx.layers._abstract`): an all-steps form (its own,
or the table's for an `equinox.nn` layer) runs the whole sequence at once; a neuron that
declares a fused form (`snnx.kernels.AbstractFusedNeuron`) runs its time loop as the run's
neuron-scan strategy says (XLA scan by default, or the Pallas kernels); otherwise a
stateful layer's one-step call is scanned and a stateless layer is mapped over time. No
branch here names a concrete layer type, so a new layer kind never edits this file.
"""

import equinox as eqx
import jax

from ..events import SpikeEvents
from ..kernels._abstract import AbstractFusedNeuron
from ..layers._abstract import AbstractEventReader, LayerRecord
from ..layers._util import call_stateless, is_stateful
from ._fused import AbstractNeuronScan, XLAScan
from ._table import all_steps_form


class RunContext(eqx.Module):
    """The options of one `snnx.run` and the planner that all-steps forms call back into.

    **Fields:**

    - `unroll`: time steps per scan iteration.
    - `record`: whether every layer's states over time are kept (`snnx.LayerRecord`).
    - `neuron_scan`: how neurons that declare a fused form (`snnx.kernels.AbstractFusedNeuron`)
        run their time loop (`snnx.engine.XLAScan` or `PallasScan`).
    """

    unroll: int | bool = eqx.field(static=True)
    record: bool = eqx.field(static=True)
    neuron_scan: AbstractNeuronScan = eqx.field(static=True, default=XLAScan())

    def scan(self, layer, xs, state, keys):
        """Scan a stateful layer's one-step call over time: `(ys, state, trace)`."""

        def step(s, inp):
            x, k = inp
            y, s = layer(x, s, key=k)
            return s, ((y, s) if self.record else y)

        state, out = jax.lax.scan(step, state, (xs, keys), unroll=self.unroll)
        if self.record:
            ys, trace = out
            return ys, state, trace
        return out, state, None

    def map_steps(self, layer, xs, keys):
        """A stateless layer applied to every time step (`jax.vmap` over time)."""
        if keys is None:
            return jax.vmap(lambda x: call_stateless(layer, x, None))(xs)
        return jax.vmap(lambda x, k: call_stateless(layer, x, k))(xs, keys)

    def run_layer(self, layer, xs, state, keys):
        """One layer over all steps, as planned from its declarations: `(ys, state, trace)`.

        An `snnx.SpikeEvents` input reaches the layer as events if its form reads them
        (`AbstractEventReader`), and as dense spikes otherwise.
        """
        form = all_steps_form(layer)
        if form is not None and form.has_all_steps():
            if isinstance(xs, SpikeEvents) and not isinstance(form, AbstractEventReader):
                xs = xs.to_dense()
            return form.all_steps(xs, state, keys=keys, context=self)
        if isinstance(xs, SpikeEvents):
            xs = xs.to_dense()
        if isinstance(layer, AbstractFusedNeuron):  # the strategy picks its loop
            return self.neuron_scan.run_neuron(layer, xs, state, keys, self)
        if is_stateful(layer):
            return self.scan(layer, xs, state, keys)
        return self.map_steps(layer, xs, keys), None, None

    def run_layers(self, layers, xs, states, keys):
        """A stack of layers, layer-major: `(ys, states, records)`.

        Layer `i` at step `t` gets `split(keys[t], len(layers))[i]`, as a one-step call of
        `snnx.Sequential` does; `records` is a tuple of `snnx.LayerRecord` (with `record`)
        or None.
        """
        n = len(layers)
        layer_keys = None if keys is None else jax.vmap(lambda k: jax.random.split(k, n))(keys)
        h, new_states, records = xs, [], []
        for i, (layer, s) in enumerate(zip(layers, states)):
            k_i = None if layer_keys is None else layer_keys[:, i]
            h, s, trace = self.run_layer(layer, h, s, k_i)
            new_states.append(s)
            records.append(LayerRecord(h, trace) if self.record else None)
        return h, tuple(new_states), (tuple(records) if self.record else None)
