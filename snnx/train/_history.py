"""`History`: what `snnx.fit` records per epoch."""

from collections.abc import Iterator, Mapping
from typing import Any

_EVAL = ("eval_loss", "eval_accuracy", "eval_rates")


class History(Mapping):
    """The per-epoch record of `snnx.fit`, read like a dict (`history["loss"]`) or by
    attribute (`history.loss`).

    **Keys:**

    - `"loss"`, `"accuracy"` (training, running over the epoch; None without class labels),
        `"rates"` (`{layer index: rate}`), `"time"` (seconds): one entry per epoch;
    - with `eval_data`: `"eval_loss"`, `"eval_accuracy"`, `"eval_rates"`;
    - `"skipped"`: samples dropped per epoch by `last_batch="drop"`;
    - `"input"`: what was trained on (`"events"`, `"dense"`, `"packed"`);
    - `"stopped"`: None, or the message of the non-finite loss that stopped training.

    **Attributes:**

    - `opt_state`: the optimiser state at the end (to continue training); not part of the
        per-epoch record, nor of `as_dict()`.
    """

    def __init__(self, *, evaluated: bool, skipped: int, input: str):
        self._data: dict[str, Any] = {"loss": [], "accuracy": [], "rates": [], "time": []}
        if evaluated:
            self._data.update({k: [] for k in _EVAL})
        self._data.update(skipped=skipped, input=input, stopped=None)
        self.opt_state = None

    def __getitem__(self, key: str):
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str):
        data = self.__dict__.get("_data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"History has no {name!r}; its keys are {sorted(data)}.")

    def __repr__(self) -> str:
        epochs = len(self._data["loss"])
        return f"History({epochs} epochs, keys={list(self._data)})"

    @property
    def epochs(self) -> int:
        """The number of completed epochs."""
        return len(self._data["loss"])

    def append(self, **values) -> None:
        """Add one epoch's values (`loss=`, `accuracy=`, ...)."""
        for k, v in values.items():
            self._data[k].append(v)

    def stop(self, message: str) -> None:
        self._data["stopped"] = message

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-serialisable dict (what checkpoints store)."""
        return {k: v for k, v in self._data.items() if k != "stopped"}

    def restore(self, saved: Mapping[str, Any]) -> None:
        """Take the per-epoch lists of a checkpoint's history (JSON turns layer indices
        into strings; they are ints again here)."""
        self._data.update({k: v for k, v in saved.items() if k in self._data and k != "stopped"})
        for k in ("rates", "eval_rates"):
            if k in self._data:
                self._data[k] = [{int(i): r for i, r in e.items()} for e in self._data[k]]
