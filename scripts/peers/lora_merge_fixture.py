#!/usr/bin/env python3
"""Check that a merged LoRA checkpoint written by our Rust code loads in HF transformers,
and record transformers' logits as the fixture crates/causal-lm/tests/fixtures/lora_merged.json.

Usage (from the repository root):

    LORA_MERGED_DIR=/tmp/lora-merged cargo test --release -p causal-lm \
        --test lora_transformers -- --ignored write_merged_checkpoint
    /path/to/venv/bin/python scripts/peers/lora_merge_fixture.py /tmp/lora-merged [--out OUT]

DIR (config.json + model.safetensors) is the tiny GPT-2 fixture (tests/fixtures/tiny-gpt2)
adapted with LoRA (rank 4, alpha 8, seed 3, all four projections, every B set to non-zero
values) and merged, saved by `causal_lm::hf::save`.  The script

  * loads DIR with `GPT2LMHeadModel.from_pretrained` (local files only) and fails if any
    weight is missing, unexpected or of the wrong shape;
  * checks the merge against the base fixture in transformers' own state dicts: every
    adapted projection weight (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj of each block)
    differs from the base by a non-zero update of rank <= 4, every other tensor is
    bit-identical;
  * runs INPUT_IDS in float64 and writes the logits (rounded to 1e-7), the shapes, the
    checks above and the peer versions to OUT.

The Rust test `tests/lora_transformers.rs` rebuilds the same model and compares its logits
(merged and saved, and unmerged) with these at 1e-4.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "crates" / "causal-lm" / "tests" / "fixtures"
DEFAULT_OUT = FIXTURES / "lora_merged.json"
DEFAULT_BASE = FIXTURES / "tiny-gpt2"

# The adapters of the Rust side (`lora_config()` in tests/lora_transformers.rs, which checks
# these values against the fixture).
LORA = {"rank": 4, "alpha": 8.0, "seed": 3,
        "projections": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]}
# Two rows of 6 ids in the fixture's vocabulary (384): the end-of-text id 0, the last id,
# a repeated id.
INPUT_IDS = [[0, 17, 250, 383, 42, 42], [5, 99, 300, 7, 128, 1]]
RUST_COMMAND = ("LORA_MERGED_DIR=DIR cargo test --release -p causal-lm --test lora_transformers"
                " -- --ignored write_merged_checkpoint")


def load(path):
    model, info = GPT2LMHeadModel.from_pretrained(
        str(path), output_loading_info=True, local_files_only=True)
    return model.eval(), info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="the merged checkpoint (config.json + model.safetensors)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture to write")
    ap.add_argument("--base", default=str(DEFAULT_BASE), help="the base model the adapters were put on")
    args = ap.parse_args()

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    model, info = load(args.dir)
    problems = {k: sorted(map(str, info.get(k, [])))
                for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        sys.exit(f"the merged checkpoint does not load cleanly: {problems}")
    base, _ = load(args.base)

    # the merge, seen from transformers' state dicts
    merged_sd = model.state_dict()
    base_sd = base.state_dict()
    if merged_sd.keys() != base_sd.keys():
        sys.exit("merged and base state dicts have different keys")
    adapted = {f"transformer.h.{i}.{p}.weight"
               for i in range(model.config.n_layer) for p in LORA["projections"]}
    deltas, unchanged = {}, 0
    for name, w in merged_sd.items():
        if name == "lm_head.weight":  # tied to transformer.wte.weight
            continue
        b = base_sd[name]
        if name in adapted:
            d = w.to(torch.float64) - b.to(torch.float64)
            s = torch.linalg.svdvals(d)
            rank = int((s > 1e-4 * s[0]).sum())
            deltas[name] = {"rank": rank, "frobenius": round(float(d.norm()), 6)}
            if not (0 < rank <= LORA["rank"]):
                sys.exit(f"{name}: update of rank {rank}, expected 1..={LORA['rank']}")
        elif not torch.equal(w, b):
            sys.exit(f"{name} changed, but it carries no adapter")
        else:
            unchanged += 1
    if set(deltas) != adapted:
        sys.exit(f"adapted projections missing from the checkpoint: {sorted(adapted - set(deltas))}")

    x = torch.tensor(INPUT_IDS, dtype=torch.long)
    with torch.no_grad():
        logits = model.to(torch.float64)(x).logits
        base_logits = base.to(torch.float64)(x).logits
    doc = {
        "description": ("Logits of transformers' GPT2LMHeadModel.from_pretrained on a merged "
                        "LoRA checkpoint written by causal_lm::hf::save (tiny-gpt2 fixture + "
                        "adapters, see tests/lora_transformers.rs), float64, rounded to 1e-7; "
                        "flattened row-major over logits_shape."),
        "command": [RUST_COMMAND,
                    "python scripts/peers/lora_merge_fixture.py DIR"
                    + ("" if args.out == str(DEFAULT_OUT) else f" --out {args.out}")],
        "lora": LORA,
        "loading_info": problems,
        "adapted_weight_updates": deltas,
        "unchanged_tensors": unchanged,
        "max_abs_logit_change_vs_base": round(float((logits - base_logits).abs().max()), 6),
        "input_ids": INPUT_IDS,
        "logits_shape": list(logits.shape),
        "logits": "@LOGITS@",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    flat = [round(v, 7) for v in logits.reshape(-1).tolist()]
    text = json.dumps(doc, indent=1).replace('"@LOGITS@"', json.dumps(flat))
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(json.dumps({"out": args.out, "bytes": len(text) + 1, "deltas": deltas,
                      "unchanged_tensors": unchanged,
                      "max_abs_logit_change_vs_base": doc["max_abs_logit_change_vs_base"],
                      "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
