"""Checkpoints: save and resume a model, its optimiser state, the epoch and the history."""

import io
import json
import os

import equinox as eqx
import jax
import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint"]

_MAGIC = b"snnx-checkpoint v1\n"


def _leaf_signature(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [
        [jax.tree_util.keystr(p), list(np.shape(x)), str(np.asarray(x).dtype)]
        for p, x in leaves
        if eqx.is_array_like(x)
    ]


def save_checkpoint(path, model, opt_state, epoch: int, history: dict | None = None) -> None:
    """Save model, optimiser state, epoch and history to one file.

    The file is a short JSON header (leaf paths, shapes and dtypes, the epoch, the history)
    followed by `eqx.tree_serialise_leaves` of `(model, opt_state)`. It is written to a
    temporary file first and renamed, so an interrupted save never leaves a broken file.

    **Arguments:**

    - `path`: file path.
    - `model`, `opt_state`: the PyTrees to save.
    - `epoch`: the number of completed epochs.
    - `history`: optional JSON-serialisable history dict.
    """
    header = {"epoch": int(epoch), "leaves": _leaf_signature((model, opt_state)),
              "history": history or {}}
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, (model, opt_state))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        f.write(buf.getvalue())
    os.replace(tmp, path)


def load_checkpoint(path, model, opt_state):
    """Load a checkpoint written by `save_checkpoint` into the structure of `model`.

    **Arguments:**

    - `path`: file path.
    - `model`, `opt_state`: PyTrees of the same architecture (their values are replaced).

    **Returns:**

    `(model, opt_state, epoch, history)`.

    **Raises:**

    `FileNotFoundError` if `path` does not exist; `ValueError` if the file is not an snnx
    checkpoint or was saved from a different architecture (naming the first leaf that
    differs).
    """
    with open(path, "rb") as f:
        magic = f.read(len(_MAGIC))
        if magic != _MAGIC:
            raise ValueError(f"`path` {str(path)!r} is not an snnx checkpoint.")
        header = json.loads(f.readline())
        expected = _leaf_signature((model, opt_state))
        saved = header["leaves"]
        if saved != expected:
            where = next(
                (f"{e} vs saved {s}" for e, s in zip(expected, saved) if e != s),
                f"{len(expected)} leaves vs {len(saved)} saved",
            )
            raise ValueError(
                f"checkpoint {str(path)!r} was saved from a different architecture or "
                f"optimiser: first difference (path, shape, dtype): {where}. Build the same "
                f"model and optimizer as when saving, or start without `resume`."
            )
        model, opt_state = eqx.tree_deserialise_leaves(f, (model, opt_state))
    return model, opt_state, header["epoch"], header["history"]
