#!/usr/bin/env python3
"""PyTorch CPU peer timings for the `causal-lm` crate (GPT-2).

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/peers/bench_causal_lm_torch.py \
        [scripts/peers/causal_lm_peer_bench.json] [--models tiny,gpt2] [--min-seconds 10]
        [--cases forward,forward_backward,decode_cached,decode_uncached] [--update]

Runs HF transformers' GPT2LMHeadModel (random init, float32, all dropout 0) with
torch.set_num_threads(2) on:

* tiny: GPT2Config(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4), batch 8;
* gpt2: GPT2Config() defaults (124M: vocab 50257, 12 layers, width 768), batch 1.

Cases per model, block size 128:

* forward           eval mode, no grad, logits of a [batch, 128] input;
* forward_backward  train mode (dropout 0), mean cross-entropy LM loss with
                    labels = input, loss.backward(); grads zeroed (outside the timer)
                    between runs;
* decode_cached /
  decode_uncached   batch 1, 8 random prompt tokens, greedy generate with exactly N new
                    tokens (N = 64 tiny, 32 gpt2), use_cache True / False.

Each case is warmed up, then timed at least 5 times and until ~min-seconds have
passed; the JSON reports medians (seconds per iteration and tokens/s).

Run it on an otherwise idle machine: with 2 torch threads, any other busy process (a
cargo build) makes every small op wait for a scheduler slice (~8 ms per op was seen),
which inflates the decode numbers tens of times.  The load average at start and end is
recorded; before each case the script waits (up to --max-wait s) until other processes
use < --idle-threshold cores, records `other_cpu_load` (cores used by other processes
while the case ran, from /proc/stat) and reruns a contended case up to --retries times;
`contended: true` in the output marks a case that never ran clean; rerun it later with
`--models M --cases C --update`, which merges into the existing output file.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "scripts" / "peers" / "causal_lm_peer_bench.json"
THREADS = 2
BLOCK = 128
PROMPT = 8
CASES = ("forward", "forward_backward", "decode_cached", "decode_uncached")
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)

MODELS = {
    "tiny": dict(
        config=lambda: GPT2Config(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4,
                                  bos_token_id=0, eos_token_id=0, **NO_DROPOUT),
        batch=8, new_tokens=64),
    "gpt2": dict(config=lambda: GPT2Config(**NO_DROPOUT), batch=1, new_tokens=32),
}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_snapshot():
    """(machine busy CPU seconds from /proc/stat, this process's CPU seconds, wall time)."""
    busy = None
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return busy, t.user + t.system, time.perf_counter()


def other_cpu_load(a, b):
    """Average number of cores used by *other* processes between two snapshots."""
    if a[0] is None or b[0] is None or b[2] <= a[2]:
        return None
    return max(0.0, ((b[0] - a[0]) - (b[1] - a[1])) / (b[2] - a[2]))


def _timeit(fn, min_runs, min_seconds, warmup, setup=None, max_runs=200):
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    times = []
    snap = _cpu_snapshot()
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_seconds and len(times) < max_runs):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": len(times),
        # cores busy with other processes meanwhile (should be ~0)
        "other_cpu_load": other_cpu_load(snap, _cpu_snapshot()),
    }


def wait_idle(threshold, max_wait, window=2.0):
    """Wait until other processes use < threshold cores for two consecutive windows."""
    start = time.perf_counter()
    quiet = 0
    while time.perf_counter() - start < max_wait:
        a = _cpu_snapshot()
        time.sleep(window)
        load = other_cpu_load(a, _cpu_snapshot())
        if load is None:
            return 0.0
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 2:
            break
    return time.perf_counter() - start


def timeit(fn, args, warmup, setup=None):
    """Time fn; wait for an idle machine first and retry when the run was contended."""
    waited = 0.0
    for attempt in range(1, args.retries + 2):
        if args.max_wait > 0:
            waited += wait_idle(args.idle_threshold, args.max_wait)
        r = _timeit(fn, args.min_runs, args.min_seconds, warmup, setup)
        load = r["other_cpu_load"]
        r["contended"] = load is not None and load > args.idle_threshold
        r["attempts"] = attempt
        r["waited_for_idle_s"] = round(waited, 1)
        if not r["contended"]:
            break
        print(f"  contended run (other_cpu_load={load:.2f}), attempt {attempt}", flush=True)
    return r


def bench_model(name, spec, args):
    torch.manual_seed(0)
    config = spec["config"]()
    model = GPT2LMHeadModel(config).to(torch.float32)
    batch, n_new = spec["batch"], spec["new_tokens"]
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, config.vocab_size, (batch, BLOCK), generator=gen)
    prompt = torch.randint(1, config.vocab_size, (1, PROMPT), generator=gen)
    out = {
        "config": {k: getattr(config, k) for k in
                   ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head",
                    "activation_function", "resid_pdrop", "embd_pdrop", "attn_pdrop")},
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "parameters": n_params,
        "batch": batch,
        "block_size": BLOCK,
        "cases": {},
    }

    want = set(args.cases.split(","))

    def stamp(r):
        r["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return r

    # forward
    model.eval()

    def fwd():
        with torch.no_grad():
            model(x).logits

    if "forward" in want:
        r = stamp(timeit(fwd, args, warmup=2))
        r["tokens_per_s"] = batch * BLOCK / r["median_s"]
        out["cases"]["forward"] = r
        print(f"{name} forward: {r}", flush=True)

    # forward + backward
    model.train()

    def fwd_bwd():
        loss = model(x, labels=x).loss
        loss.backward()

    if "forward_backward" in want:
        r = stamp(timeit(fwd_bwd, args, warmup=2,
                         setup=lambda: model.zero_grad(set_to_none=True)))
        r["tokens_per_s"] = batch * BLOCK / r["median_s"]
        out["cases"]["forward_backward"] = r
        model.zero_grad(set_to_none=True)
        print(f"{name} forward_backward: {r}", flush=True)

    # greedy decode
    model.eval()
    for cached in (True, False):
        key = "decode_cached" if cached else "decode_uncached"
        if key not in want:
            continue

        def decode():
            with torch.no_grad():
                y = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                   max_new_tokens=n_new, min_new_tokens=n_new,
                                   do_sample=False, use_cache=cached, pad_token_id=0)
            assert y.shape[1] == PROMPT + n_new, y.shape

        r = stamp(timeit(decode, args, warmup=1))
        r.update({"prompt_tokens": PROMPT, "new_tokens": n_new,
                  "new_tokens_per_s": n_new / r["median_s"]})
        out["cases"][key] = r
        print(f"{name} {key}: {r}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(DEFAULT_OUT))
    ap.add_argument("--models", default="tiny,gpt2")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="subset of " + ",".join(CASES))
    ap.add_argument("--update", action="store_true",
                    help="merge the cases run into the existing output file instead of replacing it")
    ap.add_argument("--min-runs", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--idle-threshold", type=float, default=0.2,
                    help="cores used by other processes above which a case counts as contended")
    ap.add_argument("--max-wait", type=float, default=900.0,
                    help="seconds to wait for an idle machine before each case (0: don't wait)")
    ap.add_argument("--retries", type=int, default=3, help="reruns of a contended case")
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    result = {
        "peer": "pytorch+transformers GPT2LMHeadModel (CPU, float32)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "torch_num_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "min_runs": args.min_runs,
        "min_seconds": args.min_seconds,
        "idle_threshold": args.idle_threshold,
        "statistic": "median",
        "models": {},
    }
    a = _cpu_snapshot()
    time.sleep(1.0)
    result["other_cpu_load_start"] = other_cpu_load(a, _cpu_snapshot())
    if (result["other_cpu_load_start"] or 0.0) > 0.2:
        print(f"WARNING: other processes use {result['other_cpu_load_start']:.2f} cores - "
              "machine not idle, timings will be inflated", flush=True)
    t0 = time.time()
    for name in args.models.split(","):
        result["models"][name] = bench_model(name, MODELS[name], args)
    result["loadavg_end"] = os.getloadavg()
    result["total_wall_s"] = time.time() - t0
    result["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.update and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        for name, m in result["models"].items():
            if name in old.get("models", {}):
                old["models"][name]["cases"].update(m["cases"])
            else:
                old.setdefault("models", {})[name] = m
        old.setdefault("updates", []).append(
            {"timestamp": result["timestamp"], "models": args.models, "cases": args.cases,
             "versions": result["versions"], "torch_num_threads": result["torch_num_threads"]})
        result = old
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
