#!/usr/bin/env python3
"""Prints the dp-optim table of docs/benchmarks.md: one DP-SGD step against one non-private
step of GPT-2 (our criterion medians from `cargo bench -p dp-optim --bench gpt2_step`, peak
memory from target/dp-step-memory.json) next to PyTorch + Opacus
(scripts/peers/bench_dp_step_opacus.py), measured in one sitting.

Usage (repository root, after both runs):
    python3 scripts/bench_table_dp.py target/criterion target/dp-step-memory.json \
        target/peer-bench/dp_step_opacus.json
Standard library only.
"""

import json
import os
import sys


def ours(criterion_dir, model, variant):
    path = os.path.join(criterion_dir, "dp_step", f"{model}_{variant}", "new", "estimates.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))["median"]["point_estimate"] / 1e9


def fmt(s):
    if s is None:
        return "—"
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def main():
    criterion_dir, memory_file, peer_file = sys.argv[1:4]
    memory = {row["id"]: row for row in json.load(open(memory_file))}
    peer = json.load(open(peer_file))
    peer_rows = {(r["model"], r["mode"]): r for r in peer["results"]}
    print("| model (batch × 128) | step | ours: time | × non-private | peak memory (× non-private) |"
          " Opacus / PyTorch: time | × non-private | peak RSS growth (× non-private) |")
    print("|---|---|---|---|---|---|---|---|")
    for model, batch in [("tiny", 16), ("gpt2", 4)]:
        base = ours(criterion_dir, model, "nonprivate")
        base_mem = memory.get(f"dp_step/{model}/nonprivate", {}).get("peak_mib")
        pbase = peer_rows.get((model, "nonprivate"), {})
        for variant, mode, label in [
            ("nonprivate", "nonprivate", "non-private"),
            ("fast", "hooks", "DP: ours fast / Opacus hooks"),
            ("generic", "ghost_untied", "DP: ours generic / Opacus ghost (untied head)"),
        ]:
            t = ours(criterion_dir, model, variant)
            m = memory.get(f"dp_step/{model}/{variant}", {}).get("peak_mib")
            p = peer_rows.get((model, mode), {})
            pt = p.get("median_s")
            pm = p.get("peak_rss_delta_mib")
            pbm = pbase.get("peak_rss_delta_mib")
            cells = [
                f"{model} ({batch})",
                label,
                fmt(t),
                f"{t / base:.2f}×" if t and base else "—",
                f"{m:.0f} MiB ({m / base_mem:.2f}×)" if m and base_mem else "—",
                fmt(pt) if pt else (p.get("error", "—")[:40] if p else "—"),
                f"{pt / pbase['median_s']:.2f}×" if pt and pbase.get("median_s") else "—",
                f"{pm:.0f} MiB ({pm / pbm:.2f}×)" if pm and pbm else "—",
            ]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
