"""Checkpoints: save and resume a model, its optimiser state, the epoch and the history.

A checkpoint is one file: a magic line, a JSON header line and the payload
(`eqx.tree_serialise_leaves` of `(model, opt_state)`). The header carries a sha256 over
itself and the payload, so truncation and flipped bytes are found on load, and a record of
the training run (`run_record`), so that `fit(..., resume=True)` refuses to continue a run
with another batch size, dataset or optimizer.
"""

import hashlib
import io
import json
import os
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..data.packing import PackedSpikes
from ..events import SpikeEvents
from ..neurons import trainable_spec

__all__ = ["save_checkpoint", "load_checkpoint"]

_MAGIC = b"snnx-checkpoint v2\n"
_MAGIC_V1 = b"snnx-checkpoint v1\n"  # no checksum, no run record: loaded with a warning
_RESUME = (False, True, "force")
# What `run_record` holds, as the refusal names it.
_RUN_FIELDS = {
    "batch_size": "`batch_size`",
    "last_batch": "`last_batch`",
    "n_samples": "the number of training samples",
    "T": "the number of time steps",
    "step_shape": "the per-step input shape",
    "data": "the training data (a hash of the labels and a few samples)",
    "optimizer": "the optimizer (its updates for a probe gradient: another optimizer, "
                 "learning rate or schedule)",
    "key": "`key`",
}


def _leaf_signature(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [
        [jax.tree_util.keystr(p), list(np.shape(x)), str(np.asarray(x).dtype)]
        for p, x in leaves
        if eqx.is_array_like(x)
    ]


def _digest(header: dict, payload: bytes) -> str:
    """sha256 over the header (without its digest, canonical JSON) and the payload."""
    fields = {k: v for k, v in header.items() if k != "sha256"}
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    h.update(payload)
    return h.hexdigest()


def save_checkpoint(path, model, opt_state, epoch: int, history: dict | None = None, *,
                    run: dict | None = None) -> None:
    """Save model, optimiser state, epoch and history to one file.

    The file is a short JSON header (leaf paths, shapes and dtypes, the epoch, the history,
    a sha256 checksum) followed by `eqx.tree_serialise_leaves` of `(model, opt_state)`. It
    is written to a temporary file first and renamed, so an interrupted save never leaves a
    broken file.

    **Arguments:**

    - `path`: file path.
    - `model`, `opt_state`: the PyTrees to save.
    - `epoch`: the number of completed epochs.
    - `history`: optional JSON-serialisable history dict.
    - `run`: optional record of the training run (what `fit` stores to check a resume).

    **Raises:**

    `ValueError` for a negative or non-integer `epoch`; `TypeError` if `history` or `run`
    cannot be written as JSON.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"`epoch` must be a non-negative int, got {epoch!r}.")
    header = {"epoch": int(epoch), "leaves": _leaf_signature((model, opt_state)),
              "history": history or {}}
    if run is not None:
        header["run"] = run
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, (model, opt_state))
    payload = buf.getvalue()
    header["payload_bytes"] = len(payload)
    try:
        header["sha256"] = _digest(header, payload)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"`history` and `run` must be JSON-serialisable (dicts of lists, numbers and "
            f"strings): {e}."
        ) from None
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        f.write(payload)
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
    checkpoint, is truncated or damaged (its header unreadable, its checksum wrong), or was
    saved from a different architecture (naming the first leaf that differs). A checkpoint of
    an older snnx, without a checksum, loads with a warning.
    """
    model, opt_state, epoch, history, _ = _read(path, model, opt_state, "path", stacklevel=3)
    return model, opt_state, epoch, history


def _read(path, model, opt_state, arg, *, stacklevel):
    name = f"`{arg}` {os.fspath(path)!r}"
    if os.path.isdir(path):
        raise ValueError(f"{name} is a directory; give the path of a checkpoint file.")
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(_MAGIC):
        version = 2
    elif data.startswith(_MAGIC_V1):
        version = 1
    else:
        raise ValueError(f"{name} is not an snnx checkpoint (it does not start with "
                         f"{_MAGIC.decode().strip()!r}).")
    rest = data[len(_MAGIC):]
    end = rest.find(b"\n")
    if end < 0:
        raise ValueError(f"{name} is truncated: its header ends before its newline. Save the "
                         f"checkpoint again (or start without `resume`).")
    try:
        header = json.loads(rest[:end])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{name} has a damaged header (not valid JSON: {e}). Save the "
                         f"checkpoint again (or start without `resume`).") from None
    payload = rest[end + 1:]
    _check_header(header, version, name)
    if version == 1:
        warnings.warn(
            f"{name} was written by an older snnx (format v1): it has no checksum, so damage "
            f"cannot be detected, and no record of the run, so a resume with another batch "
            f"size, dataset or optimizer cannot be refused. Save it again to upgrade it.",
            stacklevel=stacklevel,
        )
    else:
        if len(payload) != header["payload_bytes"]:
            raise ValueError(
                f"{name} is truncated or has bytes appended: its payload is {len(payload)} "
                f"bytes, the header says {header['payload_bytes']}. Save the checkpoint again "
                f"(or start without `resume`)."
            )
        if _digest(header, payload) != header["sha256"]:
            raise ValueError(
                f"{name} is damaged: its sha256 checksum does not match its contents (flipped "
                f"bytes on disk or in transfer). Use an intact copy, or start without "
                f"`resume`."
            )
    expected = _leaf_signature((model, opt_state))
    saved = header["leaves"]
    if saved != expected:
        where = next(
            (f"{e} vs saved {s}" for e, s in zip(expected, saved) if e != s),
            f"{len(expected)} leaves vs {len(saved)} saved",
        )
        raise ValueError(
            f"{name} was saved from a different architecture or "
            f"optimiser: first difference (path, shape, dtype): {where}. Build the same "
            f"model and optimizer as when saving, or start without `resume`."
        )
    try:
        model, opt_state = eqx.tree_deserialise_leaves(io.BytesIO(payload), (model, opt_state))
    except Exception as e:  # a v1 file has no checksum: truncation shows up only here
        raise ValueError(f"{name} is truncated or damaged: reading its arrays failed "
                         f"({type(e).__name__}). Save the checkpoint again (or start without "
                         f"`resume`).") from None
    return model, opt_state, header["epoch"], header["history"], header


def _check_header(header, version, name):
    needed = {"epoch": int, "leaves": list, "history": dict}
    if version >= 2:
        needed.update(payload_bytes=int, sha256=str)
    if not isinstance(header, dict):
        raise ValueError(f"{name} has a damaged header (a JSON {type(header).__name__}, not "
                         f"an object). Save the checkpoint again (or start without `resume`).")
    missing = [k for k in needed if k not in header]
    wrong = [k for k, t in needed.items()
             if k in header and (not isinstance(header[k], t) or isinstance(header[k], bool))]
    if "epoch" not in missing + wrong and header["epoch"] < 0:
        wrong.append("epoch")
    if missing or wrong:
        raise ValueError(
            f"{name} has a damaged header: missing fields {missing}, fields of the wrong type "
            f"or value {wrong}. Save the checkpoint again (or start without `resume`)."
        )


def check_checkpoint(checkpoint, resume) -> None:
    """`fit`'s `checkpoint` and `resume`, checked before anything trains."""
    if not any(resume is r or (isinstance(resume, str) and resume == r) for r in _RESUME):
        raise ValueError(f"`resume` must be False, True or 'force', got {resume!r}.")
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs a `checkpoint` path to resume from.")
    if checkpoint is None:
        return
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"`checkpoint` must be a file path (str or os.PathLike), got "
                        f"{type(checkpoint).__name__}.")
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        raise ValueError(f"`checkpoint` {path!r} is a directory; give a file path, e.g. "
                         f"{os.path.join(path, 'checkpoint.eqx')!r}.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        raise FileNotFoundError(f"`checkpoint` {path!r}: its folder {parent!r} does not "
                                f"exist; create it first.")
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"`checkpoint` {path!r}: {parent!r} is a file, not a folder; "
                                 f"give a path inside a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"`checkpoint` {path!r}: its folder {parent!r} is not writable; "
                              f"choose a folder you can write to.")


def _dense_samples(xs, idx):
    if isinstance(xs, PackedSpikes):
        return np.asarray(xs.unpack(idx), np.float32)
    if isinstance(xs, SpikeEvents):
        return np.asarray(xs[idx].to_dense(), np.float32)
    return np.asarray(jnp.asarray(xs)[idx], np.float32)


def _probe_updates(optimizer, model):
    """Summaries of three updates from a fresh state for fixed probe parameters and
    gradients: another optimizer, learning rate, momentum or schedule gives other numbers,
    whatever the model's weights are. None if the optimizer needs more than `update(g, s, p)`.
    """
    params = eqx.filter(model, trainable_spec(model))
    probe = jax.tree.map(lambda p: jnp.full(jnp.shape(p), 0.5, jnp.result_type(p)), params)
    try:
        state = optimizer.init(probe)
        out = []
        for g in (0.5, -0.25, 1.0):
            grads = jax.tree.map(lambda p, g=g: jnp.full_like(p, g), probe)
            updates, state = optimizer.update(grads, state, probe)
            leaves = [np.asarray(u, np.float64) for u in jax.tree.leaves(updates)]
            out += [float(sum(u.sum() for u in leaves)),
                    float(sum(np.abs(u).sum() for u in leaves))]
    except Exception:
        return None
    return out if np.all(np.isfinite(out)) else None


def _key_hash(key):
    try:
        if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        return hashlib.sha256(np.asarray(key).tobytes()).hexdigest()[:16]
    except Exception:
        return None


def run_record(model, optimizer, xs, ys, batch_size, last_batch, key) -> dict:
    """What tells one training run from another, for the checkpoint header: the batching,
    the data's size and a fingerprint (labels and four samples, densified, so dense, packed
    and event inputs of the same spikes agree), the optimizer's probe updates, the key."""
    n, T = int(xs.shape[0]), int(xs.shape[1])
    idx = np.unique(np.linspace(0, n - 1, 4).astype(np.int64))
    h = hashlib.sha256(np.asarray(ys).astype(np.float64).tobytes())
    h.update(_dense_samples(xs, jnp.asarray(idx)).tobytes())
    return {"batch_size": int(batch_size), "last_batch": str(last_batch), "n_samples": n,
            "T": T, "step_shape": [int(s) for s in xs.shape[2:]], "data": h.hexdigest()[:32],
            "optimizer": _probe_updates(optimizer, model), "key": _key_hash(key)}


def _differs(field, saved, now) -> bool:
    if saved is None or now is None:
        return False  # not known for one of the two (an optimizer without a plain update)
    if field == "optimizer":
        return len(saved) != len(now) or not np.allclose(saved, now, rtol=1e-4, atol=1e-12)
    return saved != now


def resume_checkpoint(checkpoint, model, opt_state, run, resume):
    """`fit`'s resume: load, and refuse a checkpoint of another run unless `resume='force'`.

    **Returns:** `(model, opt_state, epoch, history)`.
    """
    model, opt_state, epoch, history, header = _read(checkpoint, model, opt_state,
                                                     "checkpoint", stacklevel=4)
    saved = header.get("run")
    if resume == "force":
        return model, opt_state, epoch, history
    if not isinstance(saved, dict):
        if "sha256" in header:  # a v1 file has already warned
            warnings.warn(
                f"`checkpoint` {os.fspath(checkpoint)!r} holds no record of its training run "
                f"(saved by `save_checkpoint` without `run`): resuming without checking the "
                f"batch size, data and optimizer.", stacklevel=3)
        return model, opt_state, epoch, history
    diffs = [
        f"{label}: {_show(f, run.get(f))} now, {_show(f, saved.get(f))} saved"
        for f, label in _RUN_FIELDS.items() if _differs(f, saved.get(f), run.get(f))
    ]
    if diffs:
        raise ValueError(
            f"`resume=True`, but `checkpoint` {os.fspath(checkpoint)!r} was saved by a "
            f"different training run: {'; '.join(diffs)}. Resuming would not continue that "
            f"run. Pass the same settings, or `resume='force'` if the change is intended, or "
            f"another `checkpoint` path to start afresh."
        )
    return model, opt_state, epoch, history


def _show(field, value):
    if field in ("data", "key"):
        return f"hash {value}"
    if field == "optimizer":
        return "updates " + ", ".join(f"{v:.3g}" for v in value[:2]) + ", ..."
    return repr(value)
