"""snnTorch and Norse versions of workloads (a)-(d), timed in their own process.

Run as `python bench/peers/torch_peers.py LIB KIND ROUNDS [WORKLOAD [N]]` (LIB: snntorch |
norse; KIND: train | forward; WORKLOAD: a | b | c | d, default a; N: the width for d); prints
one JSON line with the timings and the peak resident memory of this process.

snnTorch: the tutorial style (a Python loop over time, `nn.Linear` + `snn.Leaky` per step,
readout `snn.Leaky(reset_mechanism="none")` membrane). Norse: `LIFBoxCell` (a current-free
LIF, like the others) and `LIBoxCell` readout, with the linear layers applied to all time
steps at once before each cell loop. Both: same sizes, decay 0.9 (Norse's dt*tau_mem_inv) or
exp(-1/10), Adam(1e-3), max-over-time cross-entropy, float32 on CPU.

(b) recurrent: snnTorch `snn.RLeaky(all_to_all=True, linear_features=256)` (its own recurrent
Linear on the spikes of t-1). Norse has no recurrent box-LIF cell (its `LIFRecurrentCell` is
the current-based LIF with a synaptic state, a different model), so Norse's (b) is
`LIFBoxCell` with an explicit `nn.Linear(256, 256, bias=False)` on the previous step's
spikes. (c) conv: `nn.Conv2d` + `F.max_pool2d` + `snn.Leaky` per step as in snnTorch's conv
tutorial; Norse with the convolutions applied to all T*B frames at once, then `LIFBoxCell`
loops; loss cross-entropy on output spike counts. (d) `nn.Linear(N, N)` + LIF, loss the mean
spike rate. Data: the same shapes and densities as bench/workloads (own numpy draw).

Spiking: KIND `rates` calibrates (`common.calibrate`, the same bisection and target as the
JAX contenders) the scale of the weights in `FEEDS` that drive each spiking module (`lif*`)
and prints `{"scales", "rates"}`; the timed kinds read the scales from `BENCH_SCALES` (JSON).
`BENCH_TORCH_COMPILE=1` wraps the network in `torch.compile` (inductor, default mode; the
backward pass through AOTAutograd); compile time is in `compile_s` (the warm-up).
Threads: `torch.set_num_threads(BENCH_THREADS)`, default 2 (the cores of the bench machine).
"""

import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import CALIB_BATCH, calibrate, max_rss_bytes, summarise  # noqa: E402

TAU = 10.0
# `BENCH_TORCH_DEVICE=cuda` runs the torch peers on the GPU (bench/run.py sets it, unless
# already set, when JAX's backend is a GPU); timings then synchronise after every step.
DEVICE = torch.device(os.environ.get("BENCH_TORCH_DEVICE", "cpu"))


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    shape = cfg.get("in_shape", (cfg.get("n_in"),))
    x = (rng.random((cfg["B"], cfg["T"]) + tuple(shape), dtype=cfg.get("draw", np.float64))
         < cfg["density"]).astype(np.float32)
    y = rng.integers(0, cfg.get("n_out", 2), cfg["B"])
    x = np.ascontiguousarray(np.swapaxes(x, 0, 1))  # time-major (T, B, ...)
    return torch.from_numpy(x).to(DEVICE), torch.from_numpy(y).to(DEVICE)


CONFIGS = {
    "a": dict(T=100, B=64, n_in=700, hidden=128, n_out=20, density=0.03),
    "b": dict(T=250, B=32, n_in=700, hidden=256, n_out=20, density=0.03),
    "c": dict(T=30, B=32, in_shape=(2, 34, 34), n_out=10, density=0.1),
    "d": dict(T=500, B=16, n_in=1024, density=0.03, draw=np.float32),
}


def snntorch_net(cfg):
    import snntorch as snn
    from snntorch import surrogate

    beta = math.exp(-1.0 / TAU)
    h = cfg["hidden"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            sg = surrogate.fast_sigmoid(slope=25)
            self.fc1 = torch.nn.Linear(cfg["n_in"], h)
            self.lif1 = snn.Leaky(beta=beta, spike_grad=sg)
            self.fc2 = torch.nn.Linear(h, h)
            self.lif2 = snn.Leaky(beta=beta, spike_grad=sg)
            self.fc3 = torch.nn.Linear(h, cfg["n_out"])
            self.li = snn.Leaky(beta=beta, reset_mechanism="none")

        def forward(self, xs):
            m1, m2, m3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.li.init_leaky()
            mems = []
            for t in range(xs.shape[0]):
                s1, m1 = self.lif1(self.fc1(xs[t]), m1)
                s2, m2 = self.lif2(self.fc2(s1), m2)
                _, m3 = self.li(self.fc3(s2), m3)
                mems.append(m3)
            return torch.stack(mems).amax(0)

    return Net()


def norse_net(cfg):
    from norse.torch.functional.leaky_integrator_box import LIBoxParameters  # noqa: F401
    from norse.torch.module.leaky_integrator_box import LIBoxCell
    from norse.torch.module.lif_box import LIFBoxCell

    h = cfg["hidden"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(cfg["n_in"], h)
            self.lif1 = LIFBoxCell()
            self.fc2 = torch.nn.Linear(h, h)
            self.lif2 = LIFBoxCell()
            self.fc3 = torch.nn.Linear(h, cfg["n_out"])
            self.li = LIBoxCell()

        def _loop(self, cell, cur):
            s, outs = None, []
            for t in range(cur.shape[0]):
                o, s = cell(cur[t], s)
                outs.append(o)
            return torch.stack(outs)

        def forward(self, xs):
            h1 = self._loop(self.lif1, self.fc1(xs))
            h2 = self._loop(self.lif2, self.fc2(h1))
            return self._loop(self.li, self.fc3(h2)).amax(0)

    return Net()


def snntorch_net_b(cfg):
    import snntorch as snn
    from snntorch import surrogate

    beta = math.exp(-1.0 / TAU)
    h = cfg["hidden"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(cfg["n_in"], h)
            self.lif1 = snn.RLeaky(beta=beta, all_to_all=True, linear_features=h,
                                   spike_grad=surrogate.fast_sigmoid(slope=25))
            self.fc2 = torch.nn.Linear(h, cfg["n_out"])
            self.li = snn.Leaky(beta=beta, reset_mechanism="none")

        def forward(self, xs):
            s1, m1 = self.lif1.init_rleaky()
            m2 = self.li.init_leaky()
            mems = []
            for t in range(xs.shape[0]):
                s1, m1 = self.lif1(self.fc1(xs[t]), s1, m1)
                _, m2 = self.li(self.fc2(s1), m2)
                mems.append(m2)
            return torch.stack(mems).amax(0)

    return Net()


def snntorch_net_c(cfg):
    import snntorch as snn
    import torch.nn.functional as F
    from snntorch import surrogate

    beta = math.exp(-1.0 / TAU)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            sg = surrogate.fast_sigmoid(slope=25)
            self.conv1 = torch.nn.Conv2d(2, 12, 5)
            self.lif1 = snn.Leaky(beta=beta, spike_grad=sg)
            self.conv2 = torch.nn.Conv2d(12, 32, 5)
            self.lif2 = snn.Leaky(beta=beta, spike_grad=sg)
            self.fc3 = torch.nn.Linear(32 * 5 * 5, cfg["n_out"])
            self.lif3 = snn.Leaky(beta=beta, spike_grad=sg)

        def forward(self, xs):
            m1, m2, m3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            spks = []
            for t in range(xs.shape[0]):
                s1, m1 = self.lif1(F.max_pool2d(self.conv1(xs[t]), 2), m1)
                s2, m2 = self.lif2(F.max_pool2d(self.conv2(s1), 2), m2)
                s3, m3 = self.lif3(self.fc3(s2.flatten(1)), m3)
                spks.append(s3)
            return torch.stack(spks).sum(0)

    return Net()


def snntorch_net_d(cfg):
    import snntorch as snn
    from snntorch import surrogate

    beta = math.exp(-1.0 / TAU)
    n = cfg["n_in"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(n, n)
            self.lif = snn.Leaky(beta=beta, spike_grad=surrogate.fast_sigmoid(slope=25))

        def forward(self, xs):
            m = self.lif.init_leaky()
            spks = []
            for t in range(xs.shape[0]):
                s, m = self.lif(self.fc(xs[t]), m)
                spks.append(s)
            return torch.stack(spks)

    return Net()


def _norse_loop(cell, cur):
    s, outs = None, []
    for t in range(cur.shape[0]):
        o, s = cell(cur[t], s)
        outs.append(o)
    return torch.stack(outs)


def norse_net_b(cfg):
    from norse.torch.module.leaky_integrator_box import LIBoxCell
    from norse.torch.module.lif_box import LIFBoxCell

    h = cfg["hidden"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(cfg["n_in"], h)
            self.rec = torch.nn.Linear(h, h, bias=False)
            self.lif1 = LIFBoxCell()
            self.fc2 = torch.nn.Linear(h, cfg["n_out"])
            self.li = LIBoxCell()

        def forward(self, xs):
            cur = self.fc1(xs)  # the input projection for all T at once
            z = torch.zeros(cur.shape[1:], device=cur.device)
            s, outs = None, []
            for t in range(cur.shape[0]):
                z, s = self.lif1(cur[t] + self.rec(z), s)  # spikes of t-1 fed back
                outs.append(z)
            return _norse_loop(self.li, self.fc2(torch.stack(outs))).amax(0)

    return Net()


def norse_net_c(cfg):
    import torch.nn.functional as F
    from norse.torch.module.lif_box import LIFBoxCell

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(2, 12, 5)
            self.lif1 = LIFBoxCell()
            self.conv2 = torch.nn.Conv2d(12, 32, 5)
            self.lif2 = LIFBoxCell()
            self.fc3 = torch.nn.Linear(32 * 5 * 5, cfg["n_out"])
            self.lif3 = LIFBoxCell()

        @staticmethod
        def _frames(layer, x):  # a stateless layer on all T*B frames at once
            T, B = x.shape[:2]
            y = layer(x.reshape((T * B,) + x.shape[2:]))
            return y.reshape((T, B) + y.shape[1:])

        def forward(self, xs):
            h = _norse_loop(self.lif1, self._frames(lambda v: F.max_pool2d(self.conv1(v), 2), xs))
            h = _norse_loop(self.lif2, self._frames(lambda v: F.max_pool2d(self.conv2(v), 2), h))
            return _norse_loop(self.lif3, self.fc3(h.flatten(2))).sum(0)

    return Net()


def norse_net_d(cfg):
    from norse.torch.module.lif_box import LIFBoxCell

    n = cfg["n_in"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(n, n)
            self.lif = LIFBoxCell()

        def forward(self, xs):
            return _norse_loop(self.lif, self.fc(xs))

    return Net()


# The module whose weight is scaled, and the spiking module it drives (both libraries name
# them alike); readouts (`li`) are not spiking layers.
FEEDS = {
    "a": (("fc1", "lif1"), ("fc2", "lif2")),
    "b": (("fc1", "lif1"),),
    "c": (("conv1", "lif1"), ("conv2", "lif2"), ("fc3", "lif3")),
    "d": (("fc", "lif"),),
}


def _set_scales(net, workload, scales, originals):
    with torch.no_grad():
        for (fc, _), s, w in zip(FEEDS[workload], scales, originals):
            getattr(net, fc).weight.copy_(s * w)


def spike_rates(net, workload, xs):
    """Mean spikes per neuron and step of each spiking module, from forward hooks (snnTorch
    and Norse cells both return the spikes first)."""
    sums = {lif: [0.0, 0] for _, lif in FEEDS[workload]}
    hooks = []
    for lif in sums:
        def hook(mod, inp, out, acc=sums[lif]):
            acc[0] += float(out[0].sum())
            acc[1] += out[0].numel()
        hooks.append(getattr(net, lif).register_forward_hook(hook))
    with torch.no_grad():
        net(xs)
    for h in hooks:
        h.remove()
    return [a / max(n, 1) for a, n in sums.values()]


def rates_main(net, workload, xs):
    originals = [getattr(net, fc).weight.detach().clone() for fc, _ in FEEDS[workload]]

    def rates_of(scales):
        _set_scales(net, workload, scales, originals)
        return spike_rates(net, workload, xs[:, :CALIB_BATCH])

    scales, _ = calibrate(rates_of, len(FEEDS[workload]))
    _set_scales(net, workload, scales, originals)
    print(json.dumps({"scales": scales, "rates": spike_rates(net, workload, xs)}))


NETS = {
    ("snntorch", "a"): snntorch_net, ("norse", "a"): norse_net,
    ("snntorch", "b"): snntorch_net_b, ("norse", "b"): norse_net_b,
    ("snntorch", "c"): snntorch_net_c, ("norse", "c"): norse_net_c,
    ("snntorch", "d"): snntorch_net_d, ("norse", "d"): norse_net_d,
}


def _peak_rss():
    """Peak resident memory of this process. Linux's getrusage max RSS is carried over from
    the parent across fork+exec (it reported the whole benchmark process), VmHWM is not."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return max_rss_bytes()


def main():
    lib, kind, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    workload = sys.argv[4] if len(sys.argv) > 4 else "a"
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    cfg = dict(CONFIGS[workload])
    if workload == "d" and len(sys.argv) > 5:
        cfg["n_in"] = int(sys.argv[5])
    for key in ("T", "B"):  # reduced sizes for smoke checks only
        if os.environ.get(f"BENCH_{key}"):
            cfg[key] = int(os.environ[f"BENCH_{key}"])
    xs, y = data(cfg)
    torch.manual_seed(0)
    net = NETS[(lib, workload)](cfg).to(DEVICE)
    if kind == "rates":
        return rates_main(net, workload, xs)
    if os.environ.get("BENCH_SCALES"):
        scales = json.loads(os.environ["BENCH_SCALES"])
        originals = [getattr(net, fc).weight.detach().clone() for fc, _ in FEEDS[workload]]
        _set_scales(net, workload, scales, originals)
    out_rates = spike_rates(net, workload, xs)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if os.environ.get("BENCH_TORCH_COMPILE") == "1":
        net = torch.compile(net)
    ce = torch.nn.CrossEntropyLoss()

    def loss_of(out):
        return out.mean() if workload == "d" else ce(out, y)

    def step():
        if kind == "forward":
            with torch.no_grad():
                return net(xs)
        opt.zero_grad()
        loss = loss_of(net(xs))
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    for _ in range(2):
        step()
    _sync()
    warm = time.perf_counter() - t0
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        _sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    out = summarise(samples, warm)
    out["rates"] = out_rates
    out["threads"] = torch.get_num_threads()
    res = step()
    if kind == "forward":
        out["out_shape"] = list(res.shape)
    else:
        out["loss"] = float(res.detach())
    if DEVICE.type == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
        out["peak_kind"] = "torch.cuda.max_memory_allocated"
    else:
        out["peak_bytes"] = _peak_rss()
        out["peak_kind"] = "peak RSS of the process (VmHWM)"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
