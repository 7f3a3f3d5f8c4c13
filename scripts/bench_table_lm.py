#!/usr/bin/env python3
"""Prints the causal-lm table of docs/benchmarks.md: our criterion medians (flex and ndarray)
against PyTorch + transformers (scripts/peers/bench_causal_lm_torch.py), measured in one sitting.

Usage (repository root, after both runs):
    python3 scripts/bench_table_lm.py target/criterion scripts/peers/causal_lm_peer_bench.json
Standard library only. Ratio = peer time / our time (above 1: we are faster).
"""

import json
import os
import sys

CASES = [
    ("forward", "forward", "forward"),
    ("forward+backward", "forward_backward", "forward_backward"),
    ("decode, KV cache", "decode/{model}/cached", "decode_cached"),
    ("decode, no cache", "decode/{model}/uncached", "decode_uncached"),
]


def ours(criterion_dir, group, backend):
    path = os.path.join(criterion_dir, group.replace("/", "_"), backend, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))["median"]["point_estimate"] / 1e9


def fmt(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def main():
    criterion_dir, peer_file = sys.argv[1], sys.argv[2]
    peer = json.load(open(peer_file))
    print("| model | task | work | flex | ndarray | PyTorch | flex vs PyTorch | ndarray vs PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    for model, spec in peer["models"].items():
        batch, block = spec["batch"], spec["block_size"]
        for label, group, case in CASES:
            p = spec["cases"].get(case)
            if p is None:
                continue
            g = group.format(model=model) if "{" in group else f"{group}/{model}"
            if case.startswith("decode"):
                n = p["new_tokens"]
                work = f"{n} new tokens, batch 1"
            else:
                n = batch * block
                work = f"{batch}×{block} tokens"
            f, a, t = ours(criterion_dir, g, "flex"), ours(criterion_dir, g, "ndarray"), p["median_s"]

            def cell(x):
                return f"{fmt(x)} ({n / x:,.0f} tok/s)" if x else "—"

            def ratio(x):
                return f"**{t / x:.2f}×**" if x else "—"

            print(f"| {model} | {label} | {work} | {cell(f)} | {cell(a)} | {cell(t)} | {ratio(f)} | {ratio(a)} |")


if __name__ == "__main__":
    main()
