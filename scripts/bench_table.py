#!/usr/bin/env python3
"""Prints the docs/benchmarks.md table: our criterion medians against the peers' medians
from scripts/peers/bench_accounting_peers.py, measured in one sitting.

Usage (repository root, after both runs):
    python3 scripts/bench_table.py target/criterion scripts/peers/peer_bench_results.json
Standard library only.
"""

import json
import os
import sys

# (criterion group, our accountant) -> peer items doing the same work at the same accuracy.
PEERS = {
    ("epsilon", "rdp"): ["opacus_rdp", "dp_accounting_rdp"],
    ("epsilon", "prv"): ["opacus_prv", "prv_accountant"],
    ("epsilon", "pld"): ["dp_accounting_pld_1e-4"],
    ("calibrate", "rdp"): ["calibrate_opacus_rdp", "calibrate_dp_accounting_rdp"],
    ("calibrate", "prv"): ["calibrate_opacus_prv"],
    ("calibrate", "pld"): ["calibrate_dp_accounting_pld_1e-4"],
}


def fmt(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def main():
    criterion_dir, peer_file = sys.argv[1], sys.argv[2]
    peers = json.load(open(peer_file))
    by_name = {(it["point"], it["item"]): it for it in peers["items"]}
    print("| task | point | ours | fastest peer | ratio | other peers |")
    print("|---|---|---|---|---|---|")
    for (group, kind), items in PEERS.items():
        for point in ("A", "B"):
            path = os.path.join(criterion_dir, group, f"{kind}_{point}", "new", "estimates.json")
            ours = json.load(open(path))["median"]["point_estimate"] / 1e9
            timed = sorted(
                (by_name[(point, i)]["median_s"], i) for i in items if (point, i) in by_name
            )
            best_s, best = timed[0]
            others = ", ".join(f"{i} {fmt(s)} ({s / ours:.0f}×)" for s, i in timed[1:]) or "—"
            print(
                f"| {group} {kind} | {point} | {fmt(ours)} | {best} {fmt(best_s)} | "
                f"**{best_s / ours:.1f}×** | {others} |"
            )


if __name__ == "__main__":
    main()
