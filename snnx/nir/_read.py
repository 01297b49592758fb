"""Reading a `.nir` file: `nir.read`, with a named error for each way a file can be bad.

`nir.read` passes h5py's and Python's errors through (`OSError` for a file that is not HDF5
or is truncated, `KeyError` for an HDF5 file that is not NIR, `TypeError` for a node missing
a field, `AssertionError` for an unknown node type); here each is a `ValueError` naming
`graph_or_path`, and the node, where there is one.
"""

import os

import nir
import numpy as np

SUPPORTED_NODES = (
    "Input, Output, Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, "
    "Threshold, IF, LIF, LI, CubaLIF, CubaLI, I, Delay, NIRGraph"
)


def _join(path, name):
    return name if not path else f"{path}.{name}"


def read_file(path):
    """`nir.read`, with a named error for every way a file can fail to be a NIR graph."""
    import h5py
    from nir.serialization import hdf2dict

    name = f"`graph_or_path` {os.fspath(path)!r}"
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"`graph_or_path` names no file: {os.fspath(path)!r}; give the path of a .nir file "
            f"written by `nir.write`."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name} is a directory; give the path of a .nir file.")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        reason = "truncated" if "truncated" in str(e) else "not an HDF5 file"
        raise ValueError(
            f"{name} is not a readable NIR file ({reason}: NIR files are HDF5 written by "
            f"`nir.write`); write it again, or check that it is not still compressed."
        ) from None
    with f:
        if not isinstance(f.get("node"), h5py.Group):
            raise ValueError(
                f"{name} is an HDF5 file but not a NIR file: it has no `node` group (it holds "
                f"{sorted(f.keys())}); give a file written by `nir.write`."
            )
        try:
            data = hdf2dict(f["node"])
        except OSError as e:
            raise ValueError(f"{name} is damaged: reading its graph failed ({e}).") from None
    _check_node_dict(data, "", name)
    if data["type"] == "NIRGraph":
        # snnx checks the shapes itself (nir's checker rejects grouped convolutions).
        data["type_check"] = False
    try:
        return nir.dict2NIRNode(data)
    except Exception as e:
        raise ValueError(
            f"{name} holds a damaged NIR graph ({type(e).__name__}: {e}); write it again "
            f"with `nir.write`."
        ) from None


def _check_node_dict(data, path, name):
    """Every node has a known type and builds, and no parameter is NaN (naming the node)."""
    where = f"node {path!r}" if path else "its top-level node"
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"{name} is damaged: {where} has no `type`; write it again with "
                         f"`nir.write`.")
    kind = data["type"]
    if kind == "NIRGraph":
        missing = [k for k in ("nodes", "edges") if k not in data]
        if missing or not isinstance(data["nodes"], dict):
            raise ValueError(f"{name} is damaged: the graph at {where} has no "
                             f"{missing or ['nodes']}; write it again with `nir.write`.")
        for key, node in data["nodes"].items():
            _check_node_dict(node, _join(path, key), name)
        return
    try:
        nir.dict2NIRNode(dict(data))
    except Exception as e:
        why = f"{type(e).__name__}: {e}" if str(e) else "not a NIR node type"
        raise ValueError(
            f"{name}: {where} of type {kind!r} cannot be read ({why}); the "
            f"file is damaged or written by an incompatible nir version (supported types: "
            f"{SUPPORTED_NODES})."
        ) from None
    for key, value in data.items():
        arr = np.asarray(value) if not isinstance(value, (dict, str)) else None
        if arr is not None and arr.dtype.kind in "fc" and np.isnan(arr).any():
            raise ValueError(f"{name}: {where} has NaN in `{key}`; the file is damaged or was "
                             f"written from a model with NaN parameters.")
