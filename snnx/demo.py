"""The first demo: a spiking classifier for scikit-learn's handwritten digits.

```
python -m snnx.demo --out out          # what `make demo` runs
```

The 1797 8x8 digit images are rate-coded into spike trains (Bernoulli, 25 steps), bit-packed
and staged on the device (`snnx.data.PackedSpikes`), and a 64-256-10 network (LIF hidden
layer, leaky-integrator readout) is trained with `snnx.fit` on the maximum of the readout
membrane over time. It prints the accuracy per epoch and the final test accuracy, and writes
a raster plot of hidden spikes and the training curves as PNGs.
"""

import argparse
import os
import sys
import time

SEED = 0
NUM_STEPS = 25
HIDDEN = 256
COPIES = 4


def load_digits_spikes(
    num_steps: int = NUM_STEPS, *, seed: int = SEED, test_fraction: float = 0.2, copies: int = 1
):
    """The digits data set rate-coded into spikes, split into train and test.

    **Arguments:**

    - `num_steps`: time steps per sample.
    - `seed`: seed of the split and of the spike encoding.
    - `test_fraction`: fraction of samples held out (stratified).
    - `copies`: independent spike encodings of every training image (augmentation: each
        copy is a different random spike train of the same image). The test set is encoded
        once.

    **Returns:**

    `((train_spikes, train_labels), (test_spikes, test_labels))` with spikes as NumPy uint8
    arrays of shape `(N, num_steps, 64)` and integer labels `(N,)`.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError(
            "the demo needs scikit-learn: `pip install 'snnx[demo]'`."
        ) from None
    import jax
    import numpy as np

    from . import encoders

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    k_tr, k_te = jax.random.split(jax.random.key(seed))
    # encoders put time first; the data sets want (N, T, features)
    x_tr, y_tr = np.tile(x_tr, (copies, 1)), np.tile(y_tr, copies)
    s_tr = np.asarray(encoders.rate(x_tr, num_steps, key=k_tr)).transpose(1, 0, 2)
    s_te = np.asarray(encoders.rate(x_te, num_steps, key=k_te)).transpose(1, 0, 2)
    return (s_tr.astype(np.uint8), y_tr), (s_te.astype(np.uint8), y_te)


def build_model(key, hidden: int = HIDDEN):
    """The demo network: Linear(64, hidden) -> LIF -> Linear(hidden, 10) -> LI readout."""
    import equinox as eqx
    import jax

    import snnx

    k1, k2 = jax.random.split(key)
    return snnx.Sequential([
        eqx.nn.Linear(64, hidden, key=k1),
        snnx.LIF(tau=5.0, v_threshold=1.0),
        eqx.nn.Linear(hidden, 10, key=k2),
        snnx.LI(tau=5.0),
    ])


def main(argv=None) -> float:
    """Train, report, plot. Returns the final test accuracy."""
    parser = argparse.ArgumentParser(prog="python -m snnx.demo", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--out", default="out", help="folder for the PNGs (default: out)")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--copies", type=int, default=COPIES,
                        help=f"spike encodings per training image (default {COPIES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-plots", action="store_true", help="do not write PNGs")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")

    t_start = time.perf_counter()
    import jax
    import numpy as np
    import optax

    import snnx
    from snnx import losses, train
    from snnx.data import PackedSpikes

    (s_tr, y_tr), (s_te, y_te) = load_digits_spikes(seed=args.seed, copies=args.copies)
    train_data = (PackedSpikes(s_tr), y_tr)
    test_data = (PackedSpikes(s_te), y_te)
    print(f"digits: {len(y_tr)} train / {len(y_te)} test samples, {NUM_STEPS} steps x 64 "
          f"inputs, rate-coded and bit-packed ({train_data[0].nbytes + test_data[0].nbytes} "
          f"bytes on {jax.devices()[0].platform})")

    key = jax.random.key(args.seed)
    k_model, k_fit = jax.random.split(key)
    model = build_model(k_model)
    steps = args.epochs * -(-len(y_tr) // args.batch_size)
    # cosine decay of the learning rate: the last epochs settle instead of oscillating
    optimizer = optax.adam(optax.cosine_decay_schedule(args.lr, steps, alpha=0.05))
    model, history = train.fit(
        model, losses.ce_max_membrane, optimizer, train_data,
        epochs=args.epochs, key=k_fit, batch_size=args.batch_size, eval_data=test_data,
        last_batch="pad", progress=not args.no_progress,
    )
    acc = history["eval_accuracy"][-1]
    wall = time.perf_counter() - t_start
    print(f"final test accuracy: {100 * acc:.2f}% ({len(y_te)} test samples)")
    print(f"wall time: {wall:.1f} s including data encoding and compilation "
          f"({jax.device_count()} {jax.devices()[0].platform} device(s), "
          f"{os.cpu_count()} CPU cores visible)")

    if not args.no_plots:
        from snnx import plot

        plot._pyplot()  # a clear error if matplotlib is missing
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        os.makedirs(args.out, exist_ok=True)
        x0 = np.asarray(test_data[0].unpack(np.arange(1)))[0]
        _, _, recs = snnx.run(model, x0, record=True)
        fig, _ = plot.raster(recs[1].output,
                             title=f"hidden LIF spikes, test digit {int(y_te[0])}")
        p1 = os.path.join(args.out, "digits_raster.png")
        fig.savefig(p1, dpi=120)
        fig, _ = plot.training_curves(history)
        p2 = os.path.join(args.out, "digits_curves.png")
        fig.savefig(p2, dpi=120)
        print(f"wrote {p1} and {p2}")
    return acc


if __name__ == "__main__":
    main()
    sys.exit(0)
