#!/usr/bin/env python3
"""PyTorch + Opacus CPU peer timings for one DP-SGD training step of GPT-2 (crates/dp-optim).

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/peers/bench_dp_step_opacus.py \
        [--out target/peer-bench/dp_step_opacus.json] [--models tiny,gpt2]
        [--modes nonprivate,hooks,ghost,ghost_untied] [--quick] [--max-wait 900]

HF transformers' GPT2LMHeadModel (random init, seed 0, float32, all dropout 0, train mode)
with torch.set_num_threads(2), block size 128, random token ids (fixed seed), no padding:

* tiny: GPT2Config(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4,
        tied embeddings), batch 16, 10 timed steps;
* gpt2: GPT2Config() (124M, tied embeddings), batch 4, 5 timed steps.

Modes (one training step each; the timer covers forward, loss, backward, optimizer step and
zero_grad):

* nonprivate    HF loss (labels = input), backward, torch.optim.SGD step, zero_grad;
* hooks         Opacus PrivacyEngine.make_private(grad_sample_mode="hooks"): per-sample
                gradients via hooks, flat clipping, Gaussian noise (noise_multiplier 1.0,
                max_grad_norm 1.0, expected batch size = batch, poisson_sampling off);
* ghost         make_private(grad_sample_mode="ghost") (ghost / fast gradient clipping: two
                backward passes, per-sample norms without per-sample gradients), the
                returned criterion (CrossEntropyLoss) wrapping the LM loss with
                shape=(batch, 127) so the privacy unit is the sequence. With tied embeddings
                Opacus 1.6 refuses this ("Parameter tying is not supported with Ghost
                Clipping"); the error is recorded;
* ghost_untied  the same with tie_word_embeddings=False (a separate lm_head matrix: more
                parameters, for gpt2 +38.6M), to get a ghost-clipping time at all;
* hooks_functorch (not run by default) hooks mode without our Conv1D grad sampler, i.e.
                Opacus's functorch fallback for Conv1D.

transformers' Conv1D (GPT-2's attention / MLP projections, weight [in, out]) has no Opacus
grad or norm sampler; the script registers einsum ones (the norm sampler is Opacus's
nn.Linear one: per-sample norms do not depend on the weight's orientation). HF GPT-2
builds position_ids of shape [1, T] by default, which Opacus would treat as a batch of one
for wpe, so position_ids of shape [batch, T] are passed in every mode (materialised, not
an expand() view: Opacus's Embedding norm sampler calls .view(-1, 1) on the indices and
fails on a non-contiguous tensor).

Each (model, mode) runs in a fresh subprocess: build model and batch, record ru_maxrss,
set up the mode, wait for an idle machine, one warm-up step, N timed steps (median);
`peak_rss_delta_mib` is ru_maxrss after the timed steps minus the value after building
model and batch (so it includes the Opacus wrappers, the warm-up step and optimizer
state), `maxrss_mib` the absolute peak of the subprocess (Python + torch included). A mode
that fails records `error` instead of times.

Run it on an otherwise idle machine (see bench_causal_lm_torch.py): before each measurement
the worker waits (up to --max-wait s) until other processes use < --idle-threshold cores
(from /proc/stat, over two consecutive 2 s windows), records `other_cpu_load` during the
timed steps and re-times a contended case up to --retries times (`contended: true` marks one
that never ran clean). --quick: tiny model only, 1 timed step (a smoke test, not a benchmark).
"""

import argparse
import importlib.metadata as md
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "target" / "peer-bench" / "dp_step_opacus.json"
THREADS = 2
BLOCK = 128
NOISE_MULTIPLIER = 1.0
MAX_GRAD_NORM = 1.0
LR = 1e-4
DEFAULT_MODES = ("nonprivate", "hooks", "ghost", "ghost_untied")
ALL_MODES = DEFAULT_MODES + ("hooks_functorch",)
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
MODELS = {
    "tiny": dict(config=dict(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4),
                 batch=16, steps=10),
    "gpt2": dict(config=dict(), batch=4, steps=5),
}


# ---------------------------------------------------------------- idle-machine helpers
def _cpu_snapshot():
    """(machine busy CPU seconds from /proc/stat, this process's CPU seconds, wall time)."""
    busy = None
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
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


def wait_idle(threshold, max_wait, window=2.0):
    """Wait until other processes use < threshold cores for two consecutive windows."""
    start = time.perf_counter()
    quiet = 0
    while time.perf_counter() - start < max_wait:
        a = _cpu_snapshot()
        time.sleep(window)
        load = other_cpu_load(a, _cpu_snapshot())
        if load is None:
            break
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 2:
            break
    return time.perf_counter() - start


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ---------------------------------------------------------------- worker (one model, one mode)
def register_conv1d_samplers():
    from opacus.grad_sample import register_grad_sampler, register_norm_sampler
    from opacus.grad_sample.linear import compute_linear_norm_sample
    from transformers.pytorch_utils import Conv1D
    import torch

    @register_grad_sampler(Conv1D)
    def compute_conv1d_grad_sample(layer, activations, backprops):
        a = activations[0].to(backprops.dtype)
        ret = {}
        if layer.weight.requires_grad:
            ret[layer.weight] = torch.einsum("n...i,n...j->nij", a, backprops)  # [n, in, out]
        if layer.bias is not None and layer.bias.requires_grad:
            ret[layer.bias] = torch.einsum("n...k->nk", backprops)
        return ret

    # ||sum_t a_t g_t^T||_F is the same for W [in, out] and W^T, so nn.Linear's works.
    register_norm_sampler(Conv1D)(compute_linear_norm_sample)


def worker(args):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    torch.set_num_threads(THREADS)
    spec = MODELS[args.model]
    mode = args.mode
    batch = spec["batch"]
    res = {"model": args.model, "batch": batch, "mode": mode, "median_s": None, "times_s": [],
           "peak_rss_delta_mib": None, "maxrss_mib": None, "error": None}

    torch.manual_seed(0)
    tied = mode != "ghost_untied"
    config = GPT2Config(**spec["config"], tie_word_embeddings=tied, **NO_DROPOUT)
    model = GPT2LMHeadModel(config).to(torch.float32).train()
    res["parameters"] = sum(p.numel() for p in model.parameters())
    res["tied_embeddings"] = model.lm_head.weight is model.transformer.wte.weight
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, config.vocab_size, (batch, BLOCK), generator=gen)
    # contiguous: Opacus's Embedding norm sampler (ghost mode) calls .view on the indices
    pos = torch.arange(BLOCK).repeat(batch, 1)
    base_rss = maxrss_mib()
    res["rss_after_build_mib"] = base_rss

    try:
        if mode == "nonprivate":
            opt = torch.optim.SGD(model.parameters(), lr=LR)

            def step():
                loss = model(input_ids=x, position_ids=pos, labels=x).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            from opacus import PrivacyEngine
            from torch.utils.data import DataLoader, TensorDataset

            if mode != "hooks_functorch":
                register_conv1d_samplers()
            ghost = mode.startswith("ghost")
            engine = PrivacyEngine()
            kw = dict(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=LR),
                      data_loader=DataLoader(TensorDataset(x), batch_size=batch),
                      noise_multiplier=NOISE_MULTIPLIER, max_grad_norm=MAX_GRAD_NORM,
                      poisson_sampling=False, grad_sample_mode="ghost" if ghost else "hooks")
            if ghost:
                dp_model, opt, criterion, _ = engine.make_private(
                    criterion=torch.nn.CrossEntropyLoss(), **kw)

                def step():
                    logits = dp_model(input_ids=x, position_ids=pos).logits
                    loss = criterion(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                     x[:, 1:].reshape(-1), shape=(batch, BLOCK - 1))
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
            else:
                dp_model, opt, _ = engine.make_private(**kw)
                assert opt.expected_batch_size == batch, opt.expected_batch_size

                def step():
                    loss = dp_model(input_ids=x, position_ids=pos, labels=x).loss
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)

        waited = 0.0
        for attempt in range(1, args.retries + 2):
            if args.max_wait > 0:
                waited += wait_idle(args.idle_threshold, args.max_wait)
            if attempt == 1:
                step()  # warm-up
            times = []
            snap = _cpu_snapshot()
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            load = other_cpu_load(snap, _cpu_snapshot())
            contended = load is not None and load > args.idle_threshold
            res.update(times_s=times, median_s=statistics.median(times), other_cpu_load=load,
                       contended=contended, attempts=attempt, waited_for_idle_s=round(waited, 1))
            if not contended:
                break
            print(f"  contended run (other_cpu_load={load:.2f}), attempt {attempt}",
                  file=sys.stderr, flush=True)
    except Exception as e:  # noqa: BLE001 - a failing mode is a result
        res["error"] = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
    peak = maxrss_mib()
    res["maxrss_mib"] = peak
    res["peak_rss_delta_mib"] = peak - base_rss
    res["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print("RESULT " + json.dumps(res), flush=True)


# ---------------------------------------------------------------- driver
def run_case(model, mode, steps, args):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", model,
           "--mode", mode, "--steps", str(steps), "--max-wait", str(args.max_wait),
           "--idle-threshold", str(args.idle_threshold), "--retries", str(args.retries)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [""]
    return {"model": model, "batch": MODELS[model]["batch"], "mode": mode, "median_s": None,
            "times_s": [], "peak_rss_delta_mib": None, "maxrss_mib": None,
            "error": f"worker exited with {p.returncode}: {tail[0][:500]}"}


def summary(results):
    hdr = f"{'model':<6} {'batch':>5} {'mode':<16} {'median s':>9} {'x nonpriv':>9} {'dRSS MiB':>9} {'RSS MiB':>8}  note"
    lines = [hdr, "-" * len(hdr)]
    base = {r["model"]: r["median_s"] for r in results if r["mode"] == "nonprivate" and r["median_s"]}
    for r in results:
        med = f"{r['median_s']:.4f}" if r["median_s"] is not None else "-"
        rel = (f"{r['median_s'] / base[r['model']]:.2f}"
               if r["median_s"] is not None and r["model"] in base else "-")
        d = f"{r['peak_rss_delta_mib']:.0f}" if r["peak_rss_delta_mib"] is not None else "-"
        m = f"{r['maxrss_mib']:.0f}" if r["maxrss_mib"] is not None else "-"
        note = r["error"] or ("CONTENDED" if r.get("contended") else "")
        lines.append(f"{r['model']:<6} {r['batch']:>5} {r['mode']:<16} {med:>9} {rel:>9} {d:>9} {m:>8}  {note}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--models", default="tiny,gpt2")
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES), help="subset of " + ",".join(ALL_MODES))
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny model, 1 timed step")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 10 tiny, 5 gpt2)")
    ap.add_argument("--idle-threshold", type=float, default=0.2,
                    help="cores used by other processes above which a run counts as contended")
    ap.add_argument("--max-wait", type=float, default=900.0,
                    help="seconds to wait for an idle machine before each case (0: don't wait)")
    ap.add_argument("--retries", type=int, default=2, help="re-timings of a contended case")
    # internal: one (model, mode) in this process
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    models = ["tiny"] if args.quick else args.models.split(",")
    modes = args.modes.split(",")
    for m in modes:
        if m not in ALL_MODES:
            ap.error(f"unknown mode {m}")
    out = {
        "peer": "pytorch+transformers GPT2LMHeadModel + opacus (CPU, float32)",
        "versions": {k: md.version(k) for k in ("torch", "transformers", "opacus")}
                    | {"python": platform.python_version()},
        "threads": THREADS,
        "block_size": BLOCK,
        "noise_multiplier": NOISE_MULTIPLIER,
        "max_grad_norm": MAX_GRAD_NORM,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "statistic": "median",
        "results": [],
    }
    t0 = time.time()
    for model in models:
        steps = 1 if args.quick else (args.steps or MODELS[model]["steps"])
        for mode in modes:
            print(f"{model} {mode} ({steps} timed steps) ...", flush=True)
            r = run_case(model, mode, steps, args)
            print(f"  median {r['median_s']} s, dRSS {r['peak_rss_delta_mib']} MiB"
                  + (f", error: {r['error']}" if r["error"] else ""), flush=True)
            out["results"].append(r)
    out["loadavg_end"] = os.getloadavg()
    out["total_wall_s"] = time.time() - t0
    out["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(summary(out["results"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
