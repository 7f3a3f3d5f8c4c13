#!/usr/bin/env python3
"""Peer of `cargo bench -p causal-lm --bench matmul`: torch.mm on the same shapes and layouts
(a transposed operand is stored transposed and used through .t()), 2 threads, GFLOP/s
(2·m·n·k per product) from the median of repeated timings.

Usage: bench_matmul_torch.py [--out OUT.json] [--threads 2]
"""
import argparse, json, statistics, time

import torch

# (name, m, n, k, lhs transposed, rhs transposed): the list in crates/causal-lm/benches/matmul.rs
CASES = [
    ("qkv_fwd", 1024, 384, 128, False, False),
    ("mlp_up_fwd", 1024, 512, 128, False, False),
    ("mlp_down_fwd", 1024, 128, 512, False, False),
    ("head_fwd", 1024, 4096, 128, False, True),
    ("qkv_dx", 1024, 128, 384, False, True),
    ("qkv_dw", 128, 384, 1024, True, False),
    ("mlp_down_dw", 512, 128, 1024, True, False),
    ("head_dx", 1024, 128, 4096, False, False),
    ("head_dw", 4096, 128, 1024, True, False),
    ("teacher_qkv_fwd", 4096, 384, 128, False, False),
    ("teacher_head_fwd", 4096, 2048, 128, False, True),
    ("gpt2_qkv_fwd", 128, 2304, 768, False, False),
    ("gpt2_mlp_dw", 768, 3072, 128, True, False),
    ("gpt2_head_fwd", 128, 50257, 768, False, True),
    ("square_512", 512, 512, 512, False, False),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="target/peer-bench/matmul_torch.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name, m, n, k, ta, tb in CASES:
        a = torch.rand(k, m).t() if ta else torch.rand(m, k)
        b = torch.rand(n, k).t() if tb else torch.rand(k, n)
        flops = 2.0 * m * n * k
        reps = max(3, int(2e8 / flops))
        for _ in range(3):
            torch.mm(a, b)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            times.append((time.perf_counter() - t0) / reps)
        med = statistics.median(times)
        results[name] = {"seconds": med, "gflops": flops / med / 1e9}
        print(f"matmul/{name:18} {med * 1e3:9.3f} ms  {flops / med / 1e9:7.1f} GFLOP/s")
    import os
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "threads": args.threads, "cases": results}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
