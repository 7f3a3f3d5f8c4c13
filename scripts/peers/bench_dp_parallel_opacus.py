#!/usr/bin/env python3
"""Opacus peer for data-parallel DP-SGD scaling (crates/dp-optim/benches/gpt2_parallel.rs).

Usage (from the repository root, machine otherwise idle):

    /work/peers-venv/bin/python scripts/peers/bench_dp_parallel_opacus.py \
        [--out target/peer-bench/dp_parallel_opacus.json] [--workers 1,2,4] [--steps 8]

The same job as ours: HF GPT2LMHeadModel with the tiny preset's shape (vocab 4096, 256
positions, width 128, 4 layers, 4 heads, tied embeddings, dropout 0), 512 records of 64 random
tokens, Poisson sampling at q = 32/512 (expected global batch 32), flat clipping C = 1,
noise multiplier 1, SGD. W processes on this machine (torch.multiprocessing, gloo on
loopback), Opacus's DifferentiallyPrivateDistributedDataParallel with make_private
(hooks mode, our Conv1D grad sampler from bench_dp_step_opacus.py, distributed Poisson
sampling: each rank samples its shard). torch uses its default intra-op threads per
process by default (as burn-flex does), or `cores // W` with `--threads split` (the default
here: 4 processes of 2 threads on 2 cores make gloo and OpenMP spin against each other, 15×
slower than one process). Rank 0 times `--steps` logical steps after one warm-up step;
the JSON holds seconds per step and steps/s for each W.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "peers"))
RECORDS, BLOCK, BATCH = 512, 64, 32


def run(rank, world, port, steps, out, threads):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), HF_HUB_OFFLINE="1",
                      TRANSFORMERS_OFFLINE="1")
    import warnings

    import torch
    import torch.distributed as dist
    from opacus import PrivacyEngine
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from bench_dp_step_opacus import register_conv1d_samplers

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    if threads > 0:
        torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = DPDDP(GPT2LMHeadModel(config).train())
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, config.vocab_size, (RECORDS, BLOCK), generator=gen)
    register_conv1d_samplers()
    # batch_size BATCH over the whole dataset: Opacus's sample rate is 1/len(loader) = 32/512,
    # and with a DPDDP model each rank Poisson-samples its own shard at that rate
    dp_model, opt, loader = PrivacyEngine().make_private(
        module=model, optimizer=torch.optim.SGD(model.parameters(), lr=1e-4),
        data_loader=DataLoader(TensorDataset(x), batch_size=BATCH),
        noise_multiplier=1.0, max_grad_norm=1.0, poisson_sampling=True,
        grad_sample_mode="hooks")

    def batches():
        while True:
            yield from loader

    it = batches()

    def step():
        (xb,) = next(it)
        pos = torch.arange(BLOCK).repeat(xb.shape[0], 1)
        if xb.shape[0] > 0:
            loss = dp_model(input_ids=xb, position_ids=pos, labels=xb).loss
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dist.barrier()
    took = time.perf_counter() - t0
    if rank == 0:
        Path(out).write_text(json.dumps({"workers": world, "steps": steps,
                                         "seconds_per_step": took / steps,
                                         "steps_per_s": steps / took}))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "target" / "peer-bench" / "dp_parallel_opacus.json"))
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", default="split",
                    help="intra-op threads per process: 'split' (cores // W, at least 1: "
                         "Opacus's best here), 'default' (torch's: all cores per process) "
                         "or a number")
    args = ap.parse_args()
    import importlib.metadata as md
    import socket

    import torch.multiprocessing as mp

    results = []
    for w in [int(v) for v in args.workers.split(",")]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        tmp = Path(args.out).with_suffix(f".w{w}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        cores = os.cpu_count() or 1
        threads = {"split": max(1, cores // w), "default": 0}.get(args.threads)
        if threads is None:
            threads = int(args.threads)
        mp.spawn(run, args=(w, port, args.steps, str(tmp), threads), nprocs=w, join=True)
        r = json.loads(tmp.read_text())
        r["threads_per_process"] = threads or "torch default"
        tmp.unlink()
        r["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(json.dumps(r), flush=True)
        results.append(r)
    meta = {k: md.version(k) for k in ("torch", "opacus", "transformers")}
    Path(args.out).write_text(json.dumps({"versions": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
