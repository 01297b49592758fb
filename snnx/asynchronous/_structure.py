"""The structure an `Unlayered` network accepts: alternating `Linear` and `LIF` layers."""

from collections.abc import Sequence

import equinox as eqx
import numpy as np

from ..neurons import LI, LIF


def default_micro_steps(sizes: Sequence[int], group_size: int) -> int:
    """The default number of micro-steps per time step: `N // group_size + n_hidden`.

    A neuron fires at most once per step, so at most `N` spikes (`N` schedulable neurons)
    are queued per step; each micro-step delivers `group_size` of them or empties the
    queue, and when spikes travel through the layers as one wave the queue empties at
    most once per layer. That is enough in the tests' runs (`state.pending` after
    each step was zero); whatever is left over is delivered in the next step and counted
    in `state.pending`.

    **Arguments:**

    - `sizes`: neurons per layer, readout last.
    - `group_size`: spikes delivered per micro-step.

    **Returns:**

    An int.
    """
    hidden = list(sizes)[:-1]
    return sum(hidden) // int(group_size) + len(hidden)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _as_list(model):
    if not isinstance(model, (list, tuple)):
        raise TypeError(
            f"`model` must be an `snnx.Sequential` or a list of layers "
            f"`[Linear, LIF, ..., Linear, LI]`, got {type(model).__name__}."
        )
    return model


def _check_layers(layers) -> tuple[tuple[int, ...], int]:
    """Sizes of the neuron layers and the input width; clear errors for anything else."""
    if len(layers) < 4 or len(layers) % 2:
        raise ValueError(
            f"`model` must alternate `eqx.nn.Linear` and neurons, `[Linear, LIF, ..., Linear, "
            f"LI]`, with at least one hidden `LIF` layer; got {len(layers)} layers."
        )
    sizes, width = [], None
    for i, (lin, neuron) in enumerate(zip(layers[::2], layers[1::2])):
        if not isinstance(lin, eqx.nn.Linear) or not _is_int(lin.in_features) or not _is_int(
                lin.out_features):
            raise TypeError(
                f"`model` layer {2 * i} must be an `eqx.nn.Linear` with integer features, got "
                f"{type(lin).__name__}; the unlayered network supports Linear + LIF stacks."
            )
        if width is not None and lin.in_features != width:
            raise ValueError(
                f"`model` layer {2 * i} (Linear) takes {lin.in_features} inputs but the layer "
                f"before has {width} neurons."
            )
        last = 2 * i + 1 == len(layers) - 1
        allowed = (LIF, LI) if last else (LIF,)
        if not isinstance(neuron, allowed):
            raise TypeError(
                f"`model` layer {2 * i + 1} must be an `snnx.LIF`"
                f"{' or `snnx.LI` (the readout)' if last else ' (a hidden layer)'}, got "
                f"{type(neuron).__name__}."
            )
        if isinstance(neuron, LIF) and neuron.reset_delay:
            raise ValueError(
                f"`model` layer {2 * i + 1} is an `LIF` with `reset_delay=True`; the unlayered "
                f"network resets at the spike: use `reset_delay=False`."
            )
        width = int(lin.out_features)
        try:
            neuron.init_state((width,))
        except ValueError as e:
            raise ValueError(f"`model` layer {2 * i + 1}: {e}") from e
        sizes.append(width)
    return tuple(sizes), int(layers[0].in_features)
