#!/usr/bin/env python3
"""transformers' `generate` timings, the peer of `cargo bench -p synth-gen --bench generate`.

Usage (from the repository root, machine idle):

    /work/peers-venv/bin/python scripts/peers/bench_generate_hf.py \
        [scripts/peers/generate_peer_bench.json] [--models tiny,gpt2] [--batches 1,8,64]
        [--large] [--only generate/gpt2/cached/64,...] [--update] [--min-seconds 10]

GPT2LMHeadModel (random init, float32, eval, no grad), torch.set_num_threads(2), sampling
with the DistilDP paper's settings: do_sample, top_k 50, top_p 0.9, temperature 1,
no_repeat_ngram_size 2; exactly 128 new tokens (min_new_tokens = max_new_tokens = 128) after
8 random prompt tokens per row (no padding), batch 1, 8 and 64, use_cache True and False.

* tiny: GPT2Config(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4);
* gpt2: GPT2Config() defaults (124M).

Without --large the cases that take minutes per run are skipped, the same ones the Rust
bench skips without SYNTH_GEN_BENCH_LARGE=1 (gpt2 uncached at batch 8 and 64, gpt2 cached at
batch 64, tiny uncached at batch 64).

--only runs just the named cases (large or not); --update merges them into an existing
output file instead of replacing it.

Each case: one warm-up, then at least --min-runs runs and until --min-seconds have passed;
medians in seconds and new tokens/s. Idle-wait and contention checks as in
bench_causal_lm_torch.py (whose helpers this script uses).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from bench_causal_lm_torch import (  # noqa: E402
    NO_DROPOUT, THREADS, _cpu_snapshot, cpu_model, other_cpu_load, timeit)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "scripts" / "peers" / "generate_peer_bench.json"
PROMPT = 8
NEW_TOKENS = 128

MODELS = {
    "tiny": lambda: GPT2Config(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4,
                               n_head=4, bos_token_id=0, eos_token_id=0, **NO_DROPOUT),
    "gpt2": lambda: GPT2Config(**NO_DROPOUT),
}


def large(model, batch, cached):
    """The cases the Rust bench runs only with SYNTH_GEN_BENCH_LARGE=1."""
    if model == "gpt2":
        return batch > 1 if not cached else batch > 8
    return not cached and batch > 8


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(DEFAULT_OUT))
    ap.add_argument("--models", default="tiny,gpt2")
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated case names to run")
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--idle-threshold", type=float, default=0.2)
    ap.add_argument("--max-wait", type=float, default=900.0)
    ap.add_argument("--retries", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    result = {
        "peer": "transformers GPT2LMHeadModel.generate (CPU, float32)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "torch_num_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "settings": dict(do_sample=True, top_k=50, top_p=0.9, temperature=1.0,
                         no_repeat_ngram_size=2, prompt_tokens=PROMPT,
                         new_tokens=NEW_TOKENS),
        "statistic": "median",
        "loadavg_start": os.getloadavg(),
        "cases": {},
    }
    a = _cpu_snapshot()
    time.sleep(1.0)
    result["other_cpu_load_start"] = other_cpu_load(a, _cpu_snapshot())
    only = {c for c in args.only.split(",") if c}
    models = args.models.split(",")
    if only:
        models = [m for m in models if any(c.split("/")[1] == m for c in only)]
    for name in models:
        torch.manual_seed(0)
        config = MODELS[name]()
        model = GPT2LMHeadModel(config).to(torch.float32).eval()
        for cached in (True, False):
            mode = "cached" if cached else "uncached"
            for batch in (int(b) for b in args.batches.split(",")):
                key = f"generate/{name}/{mode}/{batch}"
                if only and key not in only:
                    continue
                if not only and large(name, batch, cached) and not args.large:
                    continue
                gen = torch.Generator().manual_seed(batch)
                prompt = torch.randint(1, config.vocab_size, (batch, PROMPT), generator=gen)

                def run():
                    with torch.no_grad():
                        y = model.generate(
                            prompt, attention_mask=torch.ones_like(prompt),
                            do_sample=True, top_k=50, top_p=0.9, temperature=1.0,
                            no_repeat_ngram_size=2, max_new_tokens=NEW_TOKENS,
                            min_new_tokens=NEW_TOKENS, use_cache=cached, pad_token_id=0)
                    assert y.shape == (batch, PROMPT + NEW_TOKENS), y.shape

                r = timeit(run, args, warmup=1)
                r["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                r["new_tokens_per_s"] = batch * NEW_TOKENS / r["median_s"]
                result["cases"][key] = r
                print(f"{key}: {r['median_s']:.3f} s, {r['new_tokens_per_s']:.0f} tok/s",
                      flush=True)
    result["loadavg_end"] = os.getloadavg()
    result["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.update and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        old["cases"].update(result["cases"])
        old.setdefault("updates", []).append(
            {k: result[k] for k in ("timestamp", "versions", "loadavg_start", "loadavg_end")})
        result = old
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
