#!/usr/bin/env python3
"""Markdown table of `cargo bench -p synth-gen --bench generate` next to transformers' generate.

Usage: python3 scripts/bench_table_gen.py target/criterion scripts/peers/generate_peer_bench.json

Reads criterion's median (`generate_<model>_<mode>/<batch>/new/estimates.json`) and the peer's
median per case; prints new tokens/s on both sides, the ratio (peer time / ours: above 1 we are
faster), and each side's cached/uncached speed-up where both were measured.
"""

import json
import sys
from pathlib import Path

NEW_TOKENS = 128


def ours(root, case):
    f = Path(root) / case.replace("/", "_", 2) / "new" / "estimates.json"
    if not f.exists():
        return None
    return json.loads(f.read_text())["median"]["point_estimate"] / 1e9


def fmt_time(s):
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def main():
    root, peer_file = sys.argv[1], sys.argv[2]
    peer = json.loads(Path(peer_file).read_text())["cases"]
    print("| model | batch | cache | ours | ours tok/s | transformers | transformers tok/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    speedups = []
    for model in ("tiny", "gpt2"):
        for batch in (1, 8, 64):
            times = {}
            for mode in ("cached", "uncached"):
                case = f"generate/{model}/{mode}/{batch}"
                o = ours(root, case)
                p = peer.get(case, {}).get("median_s")
                times[mode] = (o, p)
                if o is None and p is None:
                    continue
                tok = batch * NEW_TOKENS
                cells = [
                    fmt_time(o) if o else "not run",
                    f"{tok / o:,.0f}" if o else "—",
                    fmt_time(p) if p else "not run",
                    f"{tok / p:,.0f}" if p else "—",
                    f"**{p / o:.2f}×**" if o and p else "—",
                ]
                print(f"| {model} | {batch} | {mode} | " + " | ".join(cells) + " |")
            (oc, pc), (ou, pu) = times["cached"], times["uncached"]
            if oc and ou:
                speedups.append((model, batch, ou / oc, pu / pc if pc and pu else None))
    print()
    print("| model | batch | cached ÷ uncached speed: ours | transformers |")
    print("|---|---|---|---|")
    for model, batch, o, p in speedups:
        print(f"| {model} | {batch} | **{o:.1f}×** | {f'{p:.1f}×' if p else '—'} |")


if __name__ == "__main__":
    main()
