"""Run each JAX peer builder of (b)-(d) once on a reduced config; print loss and output shape.

    .venv-bench/bin/python bench/peers/check_peers.py [b,c,d]
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from workloads import conv, recurrent, scaling  # noqa: E402

from peers import jax_peers  # noqa: E402

SMALL = {
    "b": (recurrent, dict(recurrent.config(), T=20, B=4)),
    "c": (conv, dict(conv.config(), T=5, B=4)),
    "d": (scaling, dict(scaling.config(256), T=20, B=4)),
}


def main():
    which = sys.argv[1].split(",") if len(sys.argv) > 1 else list(SMALL)
    for w in which:
        mod, cfg = SMALL[w]
        data = mod.make_data(cfg)
        for lib in ("spyx", "jaxpike"):
            build = getattr(jax_peers, f"build_{lib}_{w}")
            fwd, _ = build(cfg, "forward", data)
            out = jax.block_until_ready(fwd())
            step, mem = build(cfg, "train", data)
            losses = [float(step()) for _ in range(3)]
            ok = all(np.isfinite(losses))
            print(f"({w}) {lib:8s} forward {tuple(np.shape(out))} mean {float(np.mean(out)):.4f}"
                  f"  train losses {[f'{v:.4f}' for v in losses]} finite={ok} peak={mem}")


if __name__ == "__main__":
    main()
