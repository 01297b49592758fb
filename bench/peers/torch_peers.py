"""snnTorch and Norse versions of workload (a), timed in their own process.

Run as `python bench/peers/torch_peers.py LIB KIND ROUNDS` (LIB: snntorch | norse); prints
one JSON line with the timings and the peak resident memory of this process.

snnTorch: the tutorial style (a Python loop over time, `nn.Linear` + `snn.Leaky` per step,
readout `snn.Leaky(reset_mechanism="none")` membrane). Norse: `LIFBoxCell` (a current-free
LIF, like the others) and `LIBoxCell` readout, with the linear layers applied to all time
steps at once before each cell loop. Both: same sizes, decay 0.9 (Norse's dt*tau_mem_inv) or
exp(-1/10), Adam(1e-3), max-over-time cross-entropy, float32 on CPU.
"""

import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import max_rss_bytes, summarise  # noqa: E402

TAU = 10.0


def data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((cfg["B"], cfg["T"], cfg["n_in"])) < cfg["density"]).astype(np.float32)
    y = rng.integers(0, cfg["n_out"], cfg["B"])
    return torch.from_numpy(x.transpose(1, 0, 2).copy()), torch.from_numpy(y)


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


def main():
    lib, kind, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    cfg = dict(T=100, B=64, n_in=700, hidden=128, n_out=20, density=0.03)
    xs, y = data(cfg)
    torch.manual_seed(0)
    net = snntorch_net(cfg) if lib == "snntorch" else norse_net(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ce = torch.nn.CrossEntropyLoss()

    def step():
        if kind == "forward":
            with torch.no_grad():
                return net(xs)
        opt.zero_grad()
        loss = ce(net(xs), y)
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    for _ in range(2):
        step()
    warm = time.perf_counter() - t0
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1e3)
    out = summarise(samples, warm)
    out["peak_bytes"] = max_rss_bytes()
    out["peak_kind"] = "max RSS of the process"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
