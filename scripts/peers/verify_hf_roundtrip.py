#!/usr/bin/env python3
"""Check that a GPT-2 directory written by our Rust code loads in HF transformers.

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/peers/verify_hf_roundtrip.py DIR \
        [--parity crates/causal-lm/tests/fixtures/tiny-gpt2/parity.json] [--tol 1e-4]

DIR holds config.json + model.safetensors.  The model is loaded with
`GPT2LMHeadModel.from_pretrained(DIR)` (local path only), run on `forward.input_ids`
from parity.json (in float64 by default, like the reference) and its logits are
compared with `forward.logits`.  Prints one JSON line:

    {"max_abs_diff": ..., "ok": ..., "missing_keys": [...], "unexpected_keys": [...], ...}

and exits 1 unless max_abs_diff <= tol and no weight was missing (a missing weight
would be randomly initialised by transformers).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PARITY = REPO / "crates" / "causal-lm" / "tests" / "fixtures" / "tiny-gpt2" / "parity.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="directory with config.json and model.safetensors")
    ap.add_argument("--parity", default=str(DEFAULT_PARITY), help="parity.json with forward.input_ids/logits")
    ap.add_argument("--tol", type=float, default=1e-4, help="max absolute logit difference")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="dtype to run the loaded model in (weights are upcast)")
    args = ap.parse_args()

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    result = {"dir": args.dir, "parity": args.parity}
    try:
        model, info = GPT2LMHeadModel.from_pretrained(
            args.dir, output_loading_info=True, local_files_only=True)
        model = model.to(getattr(torch, args.dtype)).eval()
        with open(args.parity, encoding="utf-8") as f:
            parity = json.load(f)["forward"]
        x = torch.tensor(parity["input_ids"], dtype=torch.long)
        with torch.no_grad():
            logits = model(x).logits.to(torch.float64)
        ref = torch.tensor(parity["logits"], dtype=torch.float64)
        if logits.numel() != ref.numel():
            raise ValueError(f"logits shape {list(logits.shape)} has {logits.numel()} values, "
                             f"parity has {ref.numel()}")
        diff = (logits.reshape(-1) - ref).abs().max().item()
        missing = sorted(info.get("missing_keys", []))
        result.update({
            "max_abs_diff": diff,
            "ok": bool(diff <= args.tol and not missing),
            "tol": args.tol,
            "missing_keys": missing,
            "unexpected_keys": sorted(info.get("unexpected_keys", [])),
            "mismatched_keys": [list(map(str, k)) if isinstance(k, (tuple, list)) else str(k)
                                for k in info.get("mismatched_keys", [])],
        })
    except Exception as e:  # report as one JSON line, still exit 1
        result.update({"max_abs_diff": None, "ok": False, "error": f"{type(e).__name__}: {e}"})
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
