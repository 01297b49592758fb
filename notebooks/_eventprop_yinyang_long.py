"""Long Yin-Yang EventProp run recorded in eventprop_yinyang.ipynb (not run by the tests).

Same data, network and loss as the notebook; in addition: Adam with an exponentially
decaying learning rate, a lower-bound spike-count regulariser on the outputs, and the model
that is best on a separate validation set is kept (and then evaluated once on the test set).
Run: `PYTHONPATH=. python notebooks/_eventprop_yinyang_long.py` (env YY_N, YY_E, YY_LR, YY_DECAY).
"""

import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import snnx
from snnx.eventprop import EventPropNetwork, count_regulariser, first_spike_ce, predict_first_spike

N_TRAIN = int(os.environ.get("YY_N", 3000))
EPOCHS = int(os.environ.get("YY_E", 20))
LR = float(os.environ.get("YY_LR", 1e-2))
DECAY = float(os.environ.get("YY_DECAY", 0.85))   # learning-rate factor per epoch
DT, T, T_MAX, HIDDEN, BATCH = 0.5, 60, 15.0, 120, 32


def encode(features):
    steps = np.rint(features * T_MAX / DT).astype(int)
    xs = np.zeros((features.shape[0], T, features.shape[1] + 1), np.float32)
    rows = np.arange(features.shape[0])[:, None]
    xs[rows, steps, np.arange(features.shape[1])[None, :]] = 1.0
    xs[:, 0, -1] = 1.0
    return xs


def data(n, seed):
    f, y = snnx.data.yin_yang(n, seed=seed)
    return jnp.asarray(encode(f)), jnp.asarray(y, jnp.int32)


x_tr, y_tr = data(N_TRAIN, 0)
x_te, y_te = data(1000, 1)
x_va, y_va = data(1000, 2)

k1, k2, k3 = jax.random.split(jax.random.key(0), 3)


def linear(n_in, n_out, key, mean, std):
    lin = eqx.nn.Linear(n_in, n_out, use_bias=False, key=key)
    return eqx.tree_at(lambda m: m.weight, lin,
                       mean + std * jax.random.normal(key, (n_out, n_in)))


net = EventPropNetwork(
    [linear(5, HIDDEN, k1, 5.0, 5.0), snnx.CuBaLIF(5.0, 10.0, dt=DT),
     linear(HIDDEN, 3, k2, 0.5, 1.0), snnx.CuBaLIF(5.0, 10.0, dt=DT)],
    capacity=(4, 2))


def loss(t, y):
    return first_spike_ce(t, y, tau0=0.5, alpha=3e-3, tau1=6.0)


schedule = optax.exponential_decay(LR, transition_steps=N_TRAIN // BATCH, decay_rate=DECAY)
optimizer = optax.adam(schedule)
reg = count_regulariser(1, lower=1, strength=1e-3)
readout = eqx.filter_jit(jax.vmap(lambda m, x: m.readout(x), in_axes=(None, 0)))


def accuracy(model, x, y):
    return float(jnp.mean(predict_first_spike(readout(model, x)) == y))


opt_state, best, best_acc, t0 = None, net, -1.0, time.time()
for epoch in range(EPOCHS):
    net, hist = snnx.fit(net, loss, optimizer, (x_tr, y_tr), epochs=1,
                         key=jax.random.fold_in(k3, epoch), batch_size=BATCH,
                         regulariser=reg, progress=False, opt_state=opt_state,
                         predict=predict_first_spike)
    opt_state = hist.opt_state
    va = accuracy(net, x_va, y_va)
    if va > best_acc:
        best, best_acc = net, va
    print(f"epoch {epoch + 1}: loss {hist['loss'][-1]:.4f} val {va:.3f} "
          f"test {accuracy(net, x_te, y_te):.3f} ({time.time() - t0:.0f} s)", flush=True)
print(f"best val {best_acc:.3f}; its test accuracy {accuracy(best, x_te, y_te):.3f}; "
      f"{time.time() - t0:.0f} s")
