"""PyTorch peer for `npm run bench -- <suite> --peer torch`.

Reads one JSON request on stdin ({"suite": ..., "runs": ..., shapes}), runs the same computations
as our suite on PyTorch CPU and prints one JSON object: per-op median/min milliseconds, the torch
version, its thread count and which BLAS library the process actually loaded (read from
/proc/self/maps after a matmul, so a reference-BLAS fallback is visible). Times are wall clock of
the op, median of `runs` after one warm-up, like the TypeScript side.
"""
import json
import os
import statistics
import sys
import time

import torch


def timed(fn, runs):
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000.0)
    return {"medianMs": statistics.median(ts), "minMs": min(ts)}


def loaded_blas():
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    try:
        with open("/proc/self/maps") as maps:
            libs = sorted({line.split()[-1] for line in maps if "blas" in os.path.basename(line.split()[-1]).lower()})
    except OSError:
        libs = []
    return ", ".join(os.path.basename(p) for p in libs) or "none found in /proc/self/maps"


def kernels(req, runs):
    out = []
    mm = req["matmul"]
    a = torch.randn(mm["m"], mm["k"])
    b = torch.randn(mm["k"], mm["n"])
    out.append({"op": "matmul", **timed(lambda: a @ b, runs)})
    d = req["dense"]
    x = torch.randn(d["m"], d["k"])
    w = torch.randn(d["k"], d["n"])
    bias = torch.randn(d["n"])
    dy = torch.randn(d["m"], d["n"])
    out.append({"op": "dense fwd", **timed(lambda: torch.addmm(bias, x, w), runs)})
    out.append({"op": "dense bwd", **timed(lambda: (dy @ w.t(), x.t() @ dy, dy.sum(0)), runs)})
    r = req["rows"]
    xr = torch.randn(r["rows"], r["cols"])
    g = torch.randn(r["cols"])
    be = torch.randn(r["cols"])
    out.append({"op": "layernorm", **timed(lambda: torch.nn.functional.layer_norm(xr, (r["cols"],), g, be, 1e-5), runs)})
    out.append({"op": "softmax", **timed(lambda: torch.softmax(xr, -1), runs)})
    return out


def attention(req, runs):
    # imported lazily: the LSH layer is only needed by the attention and train suites
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lsh_attention_torch import attention_cells

    return attention_cells(req, runs, timed)


def train(req, runs):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reformer_lm_torch import train_cells

    return train_cells(req, runs, timed)


def main():
    req = json.load(sys.stdin)
    threads = int(req.get("threads") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    runs = int(req["runs"])
    with torch.no_grad() if req["suite"] == "kernels" else torch.enable_grad():
        results = {"kernels": kernels, "attention": attention, "train": train}[req["suite"]](req, runs)
    print(json.dumps({
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": loaded_blas(),
        "config": torch.__config__.show().splitlines()[:3],
        "results": results,
    }))


if __name__ == "__main__":
    main()
