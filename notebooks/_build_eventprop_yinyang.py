"""Build notebooks/eventprop_yinyang.ipynb (run: python notebooks/_build_eventprop_yinyang.py;
then execute it in full, without SNNX_NOTEBOOK_TEST, to refresh the stored outputs)."""

import pathlib

import nbformat as nbf

HERE = pathlib.Path(__file__).parent

md_intro = r"""# Yin-Yang with exact gradients (EventProp)

`snnx.eventprop.EventPropNetwork` trains a current-based LIF network (`eqx.nn.Linear` +
`snnx.CuBaLIF`, the same objects as BPTT) with **exact** gradients: the forward pass finds
every spike time exactly (closed form between grid points, bisection + Newton at a
crossing), and the backward pass integrates the EventProp adjoint backwards with a jump at
every stored spike (Wunderlich & Pehle 2021). The data are latency coded: feature `f` of
the Yin-Yang set (Kriener et al. 2021) spikes at `f * 15 ms`, a bias input at 0; the loss is
the time-to-first-spike cross-entropy with its regulariser (`snnx.eventprop.first_spike_ce`),
and `snnx.fit` trains the network unchanged (the model is the one argument that selects
EventProp).

**Silent outputs.** The exact gradient is blind to spikes that do not exist: an output that
stops firing on a sample gets no gradient from it, and since the cross-entropy keeps pushing
the wrong outputs later, plain training collapses after a few epochs (all outputs silent,
chance accuracy; see the ablation at the end). `snnx.eventprop.count_regulariser(1, lower=1)`
fixes it: a lower bound on the output spike counts, whose cotangent *lifts the incoming
weights of a silent neuron* (the gradient form of Göltz et al.'s weight bumping and of
Nowotny et al.'s silent-neuron lift; the gradient of every spiking neuron stays exact).

Under `SNNX_NOTEBOOK_TEST=1` (the test suite) the notebook trains 60 hidden neurons on 300
samples for 3 epochs and checks that it learns above chance; the full run (5000 training
samples, 120 hidden, validation and test sets of 1000) is stored in the outputs below and
summarised at the end.
"""

code_setup = r"""import os, time
import equinox as eqx, jax, jax.numpy as jnp, numpy as np, optax
import snnx
from snnx.eventprop import (EventPropNetwork, count_regulariser, first_spike_ce,
                            predict_first_spike)

SHORT = os.environ.get("SNNX_NOTEBOOK_TEST") == "1"
N_TRAIN, N_EVAL, EPOCHS = (300, 300, 3) if SHORT else (int(os.environ.get("YY_N", 5000)), 1000,
                                                      int(os.environ.get("YY_E", 30)))
HIDDEN, BATCH = (60 if SHORT else 120), 32
DT, T, T_MAX = 0.5, 60, 15.0   # ms: 60 steps of 0.5 ms; latencies in [0, 15] ms

def encode(features):
    # Latency code: feature f in [0, 1] spikes at f * T_MAX; a bias input spikes at 0.
    steps = np.rint(features * T_MAX / DT).astype(int)
    xs = np.zeros((features.shape[0], T, features.shape[1] + 1), np.float32)
    rows = np.arange(features.shape[0])[:, None]
    xs[rows, steps, np.arange(features.shape[1])[None, :]] = 1.0
    xs[:, 0, -1] = 1.0
    return xs

def data(n, seed):
    f, y = snnx.data.yin_yang(n, seed=seed)
    return f, jnp.asarray(encode(f)), jnp.asarray(y, jnp.int32)

_, x_tr, y_tr = data(N_TRAIN, 0)
f_te, x_te, y_te = data(N_EVAL, 1)
_, x_va, y_va = data(N_EVAL, 2)      # model selection only; the test set is used once

k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
def linear(n_in, n_out, key, mean, std):
    lin = eqx.nn.Linear(n_in, n_out, use_bias=False, key=key)
    return eqx.tree_at(lambda m: m.weight, lin, mean + std * jax.random.normal(key, (n_out, n_in)))
net = EventPropNetwork(
    [linear(5, HIDDEN, k1, 5.0, 5.0), snnx.CuBaLIF(5.0, 10.0, dt=DT),
     linear(HIDDEN, 3, k2, 0.5, 1.0), snnx.CuBaLIF(5.0, 10.0, dt=DT)],
    capacity=(4, 2))
res = jax.vmap(net.simulate)(x_tr[:64])
print("hidden spikes/sample", float(jnp.mean(jnp.sum(res.layers[0].counts, -1))),
      "| fraction of (sample, output) pairs that fire", float(jnp.mean(res.layers[1].counts > 0)))
"""

code_train = r"""loss = lambda t, y: first_spike_ce(t, y, tau0=0.5, alpha=3e-3, tau1=6.0)
steps_per_epoch = N_TRAIN // BATCH
optimizer = optax.adam(optax.exponential_decay(1e-2, steps_per_epoch, decay_rate=0.85))
lift = count_regulariser(1, lower=1, strength=STRENGTH)   # outputs: at least one spike
readout = eqx.filter_jit(jax.vmap(lambda m, x: m.readout(x), in_axes=(None, 0)))
accuracy = lambda m, x, y: float(jnp.mean(predict_first_spike(readout(m, x)) == y))

history, opt_state, best, best_val, t0 = [], None, net, -1.0, time.time()
for epoch in range(EPOCHS):
    net, hist = snnx.fit(net, loss, optimizer, (x_tr, y_tr), epochs=1, batch_size=BATCH,
                         key=jax.random.fold_in(k3, epoch), regulariser=lift,
                         opt_state=opt_state, last_batch="pad", progress=False)
    opt_state = hist.opt_state
    val = accuracy(net, x_va, y_va)
    history.append((hist["loss"][-1], val))
    if val > best_val:
        best, best_val, best_epoch = net, val, epoch + 1
    print(f"epoch {epoch + 1}: loss {hist['loss'][-1]:.3f}  validation {val:.3f}  "
          f"({time.time() - t0:.0f} s)")
test_acc = accuracy(best, x_te, y_te)
print(f"kept epoch {best_epoch} (validation {best_val:.3f}): test accuracy {test_acc:.3f}")
"""

code_plot = r"""import io
import matplotlib.pyplot as plt
from IPython.display import Image, display

pred = predict_first_spike(readout(best, x_te))
fig, ax = plt.subplots(1, 2, figsize=(8, 3.5))
ax[0].scatter(f_te[:, 0], f_te[:, 1], c=np.asarray(pred), s=6, cmap="viridis")
ax[0].set_title(f"predicted class (test accuracy {test_acc:.3f})")
ax[1].plot(range(1, EPOCHS + 1), [v for _, v in history], marker="o")
ax[1].set_xlabel("epoch"); ax[1].set_ylabel("validation accuracy")
fig.tight_layout()
buf = io.BytesIO(); fig.savefig(buf, format="png", dpi=90); plt.close(fig)
display(Image(buf.getvalue()))
assert test_acc > (0.40 if SHORT else 0.95), test_acc
"""

code_strength = "STRENGTH = 0.1   # the lift's weight (see the ablation below)\n"

md_results = (HERE / "_eventprop_yinyang_results.md").read_text()

nb = nbf.v4.new_notebook()
nb.cells = [nbf.v4.new_markdown_cell(md_intro), nbf.v4.new_code_cell(code_setup),
            nbf.v4.new_code_cell(code_strength + code_train), nbf.v4.new_code_cell(code_plot),
            nbf.v4.new_markdown_cell(md_results)]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, HERE / "eventprop_yinyang.ipynb")
