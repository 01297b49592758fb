"""snnx model -> NIR graph."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import nir
import numpy as np

from .._checks import check_dt
from ..layers._util import call_stateless, is_stateful, layer_name
from ..layers.basic import Flatten, Scale, SumPool2d, Threshold
from ..layers.dcls import DCLSLinear
from ..layers.delay import Delay
from ..layers.delayed import DelayedLinear
from ..layers.graph import Graph
from ..layers.recurrent import Recurrent
from ..layers.sequential import Sequential
from ..layers.sparse import SparseLinear
from ..neurons.cuba import CuBaLI, CuBaLIF
from ..neurons.if_ import IF
from ..neurons.integrator import Integrator
from ..neurons.li import LI
from ..neurons.lif import LIF

SUPPORTED_LAYERS = (
    "equinox.nn.Linear, equinox.nn.Conv1d/Conv2d (zero padding), equinox.nn.AvgPool2d, "
    "jnp.ravel, snnx.Scale/Threshold/SumPool2d/Flatten/Delay, snnx.layers.DelayedLinear, "
    "snnx.IF/LIF/LI/CuBaLIF/CuBaLI/"
    "Integrator, snnx.Recurrent, snnx.Sequential, snnx.Graph"
)


def _arr(x, shape=None) -> np.ndarray:
    a = np.asarray(jax.device_get(x), dtype=np.float32)
    if shape is not None:
        a = np.array(np.broadcast_to(a, shape))
    return a


def _out_shape(layer, shape) -> tuple[int, ...]:
    x = jax.ShapeDtypeStruct(tuple(shape), jnp.float32)
    key = jax.random.key(0)
    if is_stateful(layer):
        s = layer.init_state(tuple(shape))
        y = jax.eval_shape(lambda xx, ss: layer(xx, ss, key=key)[0], x, s)
    else:
        y = jax.eval_shape(lambda xx: call_stateless(layer, xx, key), x)
    return tuple(y.shape)


class _Context:
    def __init__(self, dt):
        self.dt = dt
        self.dts = {}

    def check_dt(self, layer, path):
        if self.dt is not None and not np.isclose(layer.dt, self.dt, rtol=1e-9, atol=0):
            raise ValueError(
                f"to_nir: layer {path!r} ({type(layer).__name__}) was built with dt={layer.dt}, "
                f"but `dt={self.dt}` was asked for; rebuild the layer with dt={self.dt} or pass "
                f"`dt={layer.dt}`."
            )
        self.dts[path] = layer.dt


def _meta(layer) -> dict:
    meta = {"snnx_type": type(layer).__name__}
    declared = {f.name for f in dataclasses.fields(layer)}
    for field in ("method", "reset_mode"):
        if field in declared:
            meta[f"snnx_{field}"] = getattr(layer, field)
    return meta


def _sym_pads(pads, path, what) -> tuple[int, ...]:
    out = []
    for lo, hi in pads:
        if lo != hi:
            raise ValueError(
                f"to_nir: layer {path!r} ({what}) pads asymmetrically ({lo}, {hi}); NIR only "
                f"represents the same padding on both sides. Use symmetric padding."
            )
        out.append(int(lo))
    return tuple(out)


def _conv(layer: eqx.nn.Conv, shape, path):
    nd = layer.num_spatial_dims
    what = type(layer).__name__
    if nd not in (1, 2):
        raise ValueError(
            f"to_nir: layer {path!r} ({what}) has {nd} spatial dims; NIR has Conv1d and Conv2d."
        )
    if layer.padding_mode != "ZEROS":
        raise ValueError(
            f"to_nir: layer {path!r} ({what}) uses `padding_mode={layer.padding_mode!r}`; NIR "
            f"convolutions pad with zeros. Use padding_mode='ZEROS'."
        )
    pads = layer.padding
    if isinstance(pads, str):
        rhs = tuple(d * (k - 1) + 1 for k, d in zip(layer.kernel_size, layer.dilation))
        pads = jax.lax.padtype_to_pads(shape[1:], rhs, layer.stride, pads)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    # PyTorch's (and NIR's) 'same' puts the odd zero at the end, as JAX's SAME does.
    totals = [d * (k - 1) for k, d in zip(layer.kernel_size, layer.dilation)]
    if all(s == 1 for s in layer.stride) and pads == tuple((t // 2, t - t // 2) for t in totals):
        padding = "same" if any(lo != hi for lo, hi in pads) else None
    else:
        padding = None
    if padding is None:
        padding = _sym_pads(pads, path, what)
        padding = padding[0] if nd == 1 else padding
    weight = _arr(layer.weight)
    bias = _arr(layer.bias).reshape(-1) if layer.use_bias else np.zeros(
        weight.shape[0], np.float32
    )
    if nd == 1:
        node = nir.Conv1d(
            input_shape=int(shape[1]), weight=weight, stride=int(layer.stride[0]),
            padding=padding, dilation=int(layer.dilation[0]), groups=int(layer.groups),
            bias=bias,
        )
    else:
        node = nir.Conv2d(
            input_shape=tuple(int(s) for s in shape[1:]), weight=weight,
            stride=tuple(int(s) for s in layer.stride), padding=padding,
            dilation=tuple(int(d) for d in layer.dilation), groups=int(layer.groups),
            bias=bias,
        )
    # nir derives the input channels from the weight (wrong for groups > 1) and the output
    # size from the first kernel dimension only (wrong for non-square kernels): set both.
    node.input_type = {"input": np.array(shape)}
    node.output_type = {"output": np.array(_out_shape(layer, shape))}
    return node


def _leaf(layer, shape, path, ctx) -> nir.NIRNode:
    if isinstance(layer, SparseLinear):  # the same affine map; the event path is ours
        if layer.bias is not None:
            return nir.Affine(weight=_arr(layer.weight), bias=_arr(layer.bias))
        return nir.Linear(weight=_arr(layer.weight))
    if isinstance(layer, eqx.nn.Linear):
        if layer.in_features == "scalar" or layer.out_features == "scalar":
            raise ValueError(
                f"to_nir: layer {path!r} (Linear) has scalar features; NIR Linear/Affine map "
                f"vectors. Use in_features/out_features >= 1."
            )
        if layer.use_bias:
            return nir.Affine(weight=_arr(layer.weight), bias=_arr(layer.bias))
        return nir.Linear(weight=_arr(layer.weight))
    if isinstance(layer, eqx.nn.Conv) and not isinstance(layer, eqx.nn.ConvTranspose):
        return _conv(layer, shape, path)
    if isinstance(layer, eqx.nn.AvgPool2d):
        if layer.use_ceil:
            raise ValueError(
                f"to_nir: layer {path!r} (AvgPool2d) uses `use_ceil=True`; NIR pools round "
                f"down. Use use_ceil=False."
            )
        pads = _sym_pads(layer.padding, path, "AvgPool2d")
        return nir.AvgPool2d(
            kernel_size=np.array(layer.kernel_size), stride=np.array(layer.stride),
            padding=np.array(pads),
        )
    if isinstance(layer, SumPool2d):
        return nir.SumPool2d(
            kernel_size=np.array(layer.kernel_size), stride=np.array(layer.stride),
            padding=np.array(layer.padding),
        )
    if isinstance(layer, Flatten) or layer is jnp.ravel:
        start, end = (0, -1) if layer is jnp.ravel else (layer.start_dim, layer.end_dim)
        return nir.Flatten(
            input_type={"input": np.array(shape)}, start_dim=start, end_dim=end
        )
    if isinstance(layer, Scale):
        return nir.Scale(scale=_arr(layer.scale, shape))
    if isinstance(layer, Threshold):
        return nir.Threshold(threshold=_arr(layer.threshold, shape))
    if isinstance(layer, Delay):
        return nir.Delay(delay=_arr(layer.delay, shape))
    if isinstance(layer, (LIF, CuBaLIF)) and layer.reset_delay:
        raise ValueError(
            f"to_nir: layer {path!r} ({type(layer).__name__}) uses `reset_delay=True`, "
            f"snnTorch's one-step-late reset, which NIR's neuron definitions (reset at the "
            f"spike) do not express; export a copy with `reset_delay=False`."
        )
    if isinstance(layer, (IF, LIF, LI, CuBaLIF, CuBaLI, Integrator)):
        ctx.check_dt(layer, path)
        p = {name: _arr(layer._get(name), shape) for name in layer._parameters}
        meta = {"metadata": _meta(layer)}
        if isinstance(layer, LIF):
            return nir.LIF(p["tau"], p["r"], p["v_leak"], p["v_threshold"], p["v_reset"], **meta)
        if isinstance(layer, IF):
            return nir.IF(p["r"], p["v_threshold"], p["v_reset"], **meta)
        if isinstance(layer, LI):
            return nir.LI(p["tau"], p["r"], p["v_leak"], **meta)
        if isinstance(layer, CuBaLIF):
            return nir.CubaLIF(
                tau_syn=p["tau_syn"], tau_mem=p["tau_mem"], r=p["r"], v_leak=p["v_leak"],
                v_threshold=p["v_threshold"], v_reset=p["v_reset"], w_in=p["w_in"], **meta,
            )
        if isinstance(layer, CuBaLI):
            return nir.CubaLI(
                tau_syn=p["tau_syn"], tau_mem=p["tau_mem"], r=p["r"], v_leak=p["v_leak"],
                w_in=p["w_in"], **meta,
            )
        return nir.I(r=p["r"], **meta)
    raise ValueError(
        f"to_nir: layer {path!r} ({layer_name(layer)}) has no NIR equivalent. Supported: "
        f"{SUPPORTED_LAYERS}."
    )


def _graph(nodes, edges, in_name, out_name, in_shape, out_shape) -> nir.NIRGraph:
    nodes = {in_name: nir.Input(input_type=np.array(in_shape)), **nodes}
    nodes[out_name] = nir.Output(output_type=np.array(out_shape))
    return nir.NIRGraph(nodes=nodes, edges=list(edges), metadata={}, type_check=False)


def _flat_chain(layers, prefix=""):
    for i, layer in enumerate(layers):
        name = f"{prefix}{i}"
        if isinstance(layer, Sequential):
            yield from _flat_chain(layer.layers, prefix=f"{name}.")
        else:
            yield name, layer


def _join(path, name):
    return name if not path else f"{path}.{name}"


def _chain(layers, shape, path, ctx) -> nir.NIRGraph:
    nodes, edges, prev, in_shape = {}, [], "input", tuple(shape)
    for name, layer in _flat_chain(layers):
        nodes[name] = _node(layer, shape, _join(path, name), ctx)
        edges.append((prev, name))
        try:
            shape = _out_shape(layer, shape)
        except Exception as e:
            raise ValueError(
                f"to_nir: layer {_join(path, name)!r} ({layer_name(layer)}) cannot take an "
                f"input of shape {tuple(shape)}: {type(e).__name__}: {e}"
            ) from e
        prev = name
    edges.append((prev, "output"))
    return _graph(nodes, edges, "input", "output", in_shape, shape)


def _delayed(layer: DelayedLinear, ctx) -> nir.NIRGraph:
    """Per-synapse delays as an equivalent NIR graph: for every delay value `d` used, a
    `Delay` of `d * dt` on all inputs feeding a `Linear` with the synapses of that delay;
    the `Linear`s' outputs are summed at the output (several edges into one node)."""
    W, D = np.asarray(layer.weight, np.float32), np.asarray(layer.delay)
    nodes, edges = {}, []
    for d in np.unique(D):
        nodes[f"delay_{d}"] = nir.Delay(delay=np.full(layer.in_features, d * layer.dt,
                                                      np.float32))
        nodes[f"weight_{d}"] = nir.Linear(weight=np.where(D == d, W, 0).astype(np.float32))
        edges += [("input", f"delay_{d}"), (f"delay_{d}", f"weight_{d}"),
                  (f"weight_{d}", "output")]
    graph = _graph(nodes, edges, "input", "output", (layer.in_features,),
                   (layer.out_features,))
    graph.metadata = {"snnx_type": "DelayedLinear", "max_delay": layer.max_delay}
    return graph


def _node(layer, shape, path, ctx) -> nir.NIRNode:
    shape = tuple(shape)
    if isinstance(layer, DelayedLinear):
        return _delayed(layer, ctx)
    if isinstance(layer, DCLSLinear):
        raise ValueError(
            f"to_nir: layer {path!r} (DCLSLinear) has real-valued delays, which NIR does not "
            f"express; export `snnx.layers.round_delays(model)` (integer delays) instead."
        )
    if isinstance(layer, Sequential):
        return _chain(layer.layers, shape, path, ctx)
    if isinstance(layer, Graph):
        shapes = layer.node_shapes(shape)
        nodes = {
            name: _node(sub, shapes[name][0], _join(path, name), ctx)
            for name, sub in layer.nodes.items()
        }
        return _graph(nodes, layer.edges, layer.input, layer.output, shape,
                      shapes[layer.output][1])
    if isinstance(layer, Recurrent):
        n = layer.size
        nodes = {
            "neuron": _node(layer.neuron, (n,), _join(path, "neuron"), ctx),
            "w_rec": nir.Linear(weight=_arr(layer._weight())) if layer.bias is None else
            nir.Affine(weight=_arr(layer._weight()), bias=_arr(layer.bias)),
        }
        edges = [("input", "neuron"), ("neuron", "w_rec"), ("w_rec", "neuron"),
                 ("neuron", "output")]
        return _graph(nodes, edges, "input", "output", (n,), _out_shape(layer.neuron, (n,)))
    return _leaf(layer, shape, path, ctx)


def to_nir(model, input_shape, *, dt: float | None = None) -> nir.NIRGraph:
    ctx = _Context(None if dt is None else check_dt("to_nir", dt))
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (int(input_shape),)
    try:
        input_shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(
            f"`input_shape` must be the per-step input shape of one sample (a tuple of ints), "
            f"got {input_shape!r}."
        ) from None
    if isinstance(model, Sequential):
        graph = _chain(model.layers, input_shape, "", ctx)
    elif isinstance(model, Graph):
        graph = _node(model, input_shape, "", ctx)
    else:
        graph = _chain([model], input_shape, "", ctx)
    dts = set(ctx.dts.values())
    if dt is None and len(dts) > 1:
        raise ValueError(
            f"to_nir: the model's neurons use different time steps {ctx.dts}; NIR graphs run "
            f"with one dt. Rebuild them with one `dt`."
        )
    used = ctx.dt if ctx.dt is not None else (dts.pop() if dts else None)
    graph.metadata = {"source": "snnx"} if used is None else {"source": "snnx", "dt": used}
    graph.infer_types()
    graph.check_types()
    return graph
