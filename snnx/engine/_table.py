"""The one table of all-steps forms for `equinox.nn` layers that users bring.

snnx's own layers declare their all-steps form by subclassing
`snnx.layers.AbstractAllSteps`; `equinox.nn` layers cannot, so each one with a faster
whole-sequence form is listed here once, keyed by its exact type (a subclass may change
`__call__`, so it is not assumed to share the form).
"""

from typing import Any

import equinox as eqx

from ..events import SpikeEvents, project
from ..layers._abstract import AbstractAllSteps, AbstractEventReader
from ..layers.pool import tiled_pool
from ..layers.sparse import dense_projection


class LinearSteps(AbstractEventReader):
    """`eqx.nn.Linear` on every step at once: one `h @ W.T + b`, or the event-driven
    projection of an `snnx.SpikeEvents` input (same numbers up to summation order)."""

    layer: eqx.nn.Linear

    def has_all_steps(self) -> bool:
        return isinstance(self.layer.in_features, int) and isinstance(
            self.layer.out_features, int
        )

    def all_steps(self, xs, state, *, keys, context):
        if isinstance(xs, SpikeEvents):
            return project(xs, self.layer.weight, self.layer.bias), None, None
        return dense_projection(xs, self.layer.weight, self.layer.bias), None, None


class PoolSteps(AbstractAllSteps):
    """Equinox max/avg pools whose windows tile the input (kernel == stride, no padding) as
    one reshape + max/mean over all steps (see `snnx.layers.pool`)."""

    layer: Any

    def has_all_steps(self) -> bool:
        return tiled_pool(self.layer) is not None

    def all_steps(self, xs, state, *, keys, context):
        if xs.ndim != self.layer.num_spatial_dims + 2:  # (T, channels, *spatial) only
            return context.map_steps(self.layer, xs, keys), None, None  # equinox's own error
        return tiled_pool(self.layer)(xs), None, None


EQUINOX_FORMS: dict[type, type[AbstractAllSteps]] = {
    eqx.nn.Linear: LinearSteps,
    **{pool: PoolSteps for pool in (
        eqx.nn.MaxPool1d, eqx.nn.MaxPool2d, eqx.nn.MaxPool3d,
        eqx.nn.AvgPool1d, eqx.nn.AvgPool2d, eqx.nn.AvgPool3d,
    )},
}


def all_steps_form(layer) -> AbstractAllSteps | None:
    """The layer's declared all-steps form, its entry in the table, or None."""
    if isinstance(layer, AbstractAllSteps):
        return layer
    form = EQUINOX_FORMS.get(type(layer))
    return None if form is None else form(layer)
