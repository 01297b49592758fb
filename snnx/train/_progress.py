"""Progress display for `snnx.fit` and for long host loops (data loaders, `snnx.ode`
over many inputs): small meter objects, as diffrax's `progress_meter`."""

import abc

import numpy as np


class AbstractProgressMeter(abc.ABC):
    """What `snnx.fit` tells a progress display. Subclass it for your own (a logger, a
    notebook widget); every method is called on the host between compiled steps.

    A meter must not force a device sync on every batch: `batch` receives the step's
    `info` (device arrays) and may read it only now and then.
    """

    @abc.abstractmethod
    def start(self, epochs: int, first_epoch: int, scan_epoch: bool) -> None:
        """Training of epochs `first_epoch..epochs-1` begins (0-based)."""

    @abc.abstractmethod
    def epoch_start(self, epoch: int, epochs: int, n_batches: int) -> None:
        """Epoch `epoch` (0-based) begins with `n_batches` steps (not called batch by batch
        when `scan_epoch=True`)."""

    @abc.abstractmethod
    def batch(self, index: int, n_batches: int, info: dict, accuracy: bool) -> None:
        """Step `index` of the epoch finished; `accuracy`: whether `info["correct"]` counts."""

    @abc.abstractmethod
    def epoch_end(self, line: str) -> None:
        """The epoch is done; `line` summarises it (loss, accuracy, time)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Training ended (normally or stopped)."""


class AbstractLoopMeter(abc.ABC):
    """What a long host loop tells a progress display: a data loader reading or binning
    many samples (`snnx.data.load_shd`, `load_nmnist`, `snnx.data.tonic`, `pack_spikes`),
    `snnx.ode.simulate_batch` over chunks of inputs. Subclass it for your own; the built-in
    `NoProgressMeter` and `TqdmProgressMeter` are both this and an `AbstractProgressMeter`,
    so one object serves `fit` and the loaders.
    """

    @abc.abstractmethod
    def loop_start(self, total: int, desc: str) -> None:
        """A loop over `total` items (samples, files, inputs) begins; `desc` names it."""

    @abc.abstractmethod
    def loop_update(self, n: int) -> None:
        """`n` more items are done."""

    @abc.abstractmethod
    def loop_end(self) -> None:
        """The loop ended (normally or by an error)."""


class NoProgressMeter(AbstractProgressMeter, AbstractLoopMeter):
    """Show nothing (`fit(..., progress=False)`, the loaders' default)."""

    def start(self, epochs, first_epoch, scan_epoch):
        pass

    def epoch_start(self, epoch, epochs, n_batches):
        pass

    def batch(self, index, n_batches, info, accuracy):
        pass

    def epoch_end(self, line):
        pass

    def close(self):
        pass

    def loop_start(self, total, desc):
        pass

    def loop_update(self, n):
        pass

    def loop_end(self):
        pass


class TqdmProgressMeter(AbstractProgressMeter, AbstractLoopMeter):
    """A tqdm bar per epoch (or one over the epochs with `scan_epoch=True`), the running
    loss and accuracy every `refresh` steps, and a line per epoch. The default of `fit`.
    In a host loop (`progress=True` of the data loaders), one bar over its items.

    **Arguments:**

    - `refresh`: steps between updates of the running loss/accuracy (each one reads the
        device). Default 10.

    **Raises:**

    `ImportError` naming the extra to install when tqdm is missing.
    """

    def __init__(self, refresh: int = 10):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError(
                "progress bars need tqdm: `pip install 'snnx[progress]'`, or pass "
                "`progress=False`."
            ) from None
        self._tqdm = tqdm
        self.refresh = int(refresh)
        self._bar = self._epochs_bar = self._loop_bar = None
        self._tally = []

    def start(self, epochs, first_epoch, scan_epoch):
        if scan_epoch:
            self._epochs_bar = self._tqdm(total=epochs, initial=first_epoch, desc="epochs",
                                          unit="epoch")

    def epoch_start(self, epoch, epochs, n_batches):
        self._bar = self._tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{epochs}",
                               unit="batch", leave=False)
        self._tally, self._infos = [], []

    def batch(self, index, n_batches, info, accuracy):
        self._bar.update(1)
        self._infos.append(info)
        if index % self.refresh == self.refresh - 1 or index == n_batches - 1:
            postfix = {"loss": f"{float(info['loss']):.4f}"}
            if accuracy:
                for i in self._infos[len(self._tally):]:
                    self._tally.append((float(i["count"]), float(i["correct"])))
                seen, hits = np.sum(self._tally, axis=0)
                postfix["acc"] = f"{hits / seen:.4f}"
            self._bar.set_postfix(postfix)

    def epoch_end(self, line):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._epochs_bar is not None:
            self._epochs_bar.update(1)
            self._epochs_bar.set_postfix_str(line.split(": ", 1)[1])
            self._epochs_bar.write(line)
        else:
            self._tqdm.write(line)

    def close(self):
        for bar in (self._bar, self._epochs_bar):
            if bar is not None:
                bar.close()
        self._bar = self._epochs_bar = None

    def loop_start(self, total, desc):
        self.loop_end()
        self._loop_bar = self._tqdm(total=total, desc=desc, leave=False)

    def loop_update(self, n):
        if self._loop_bar is not None:
            self._loop_bar.update(n)

    def loop_end(self):
        if self._loop_bar is not None:
            self._loop_bar.close()
            self._loop_bar = None


def as_progress_meter(progress) -> AbstractProgressMeter:
    """`fit`'s `progress` argument as a meter: True -> `TqdmProgressMeter()`, False ->
    `NoProgressMeter()`, a meter as it is."""
    return _as_meter(progress, AbstractProgressMeter, "an `snnx.train.AbstractProgressMeter`")


def as_loop_meter(progress) -> AbstractLoopMeter:
    """A loop's `progress` argument as a meter, as in `fit`: True -> `TqdmProgressMeter()`,
    False or None -> `NoProgressMeter()`, an `AbstractLoopMeter` as it is.

    **Raises:**

    `TypeError` for anything else (naming `progress`); `ImportError` for True without tqdm.
    """
    return _as_meter(
        progress,
        AbstractLoopMeter,
        "an `snnx.train.AbstractLoopMeter` (such as `snnx.train.TqdmProgressMeter()`)",
    )


def _as_meter(progress, base, what):
    if isinstance(progress, base):
        return progress
    if progress is True:
        return TqdmProgressMeter()
    if progress is False or progress is None:
        return NoProgressMeter()
    raise TypeError(f"`progress` must be True, False or {what}, got {progress!r}.")
