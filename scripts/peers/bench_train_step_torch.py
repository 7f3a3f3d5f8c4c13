#!/usr/bin/env python3
"""PyTorch CPU peer of `crates/distil-dp/benches/train_step.rs`: the pipeline's two
non-private training steps in the quickstart's shapes.

Usage (from the repository root, machine otherwise idle):

    /path/to/venv/bin/python scripts/peers/bench_train_step_torch.py \
        [--out target/peer-bench/train_step_torch.json] [--min-seconds 10]

HF transformers' GPT2LMHeadModel (random init, float32, dropout 0), vocabulary 2048,
n_positions 64, blocks of 64 tokens with an all-ones attention mask, random token ids,
torch.set_num_threads(2), torch.optim.AdamW(lr=1e-3, weight_decay=0.01):

* pretrain/teacher  4 layers x 128 (4 heads), batch 64: mean next-token cross-entropy
                    (`labels=ids`), backward, AdamW step, zero_grad;
* pretrain/student  2 layers x 64 (4 heads), batch 32: the same;
* distill           the student (batch 32) against the teacher: the student's forward, the
                    teacher's forward under no_grad, loss = 0.4 * KL(teacher || student at
                    tau = 1, mean over predicted tokens) + 0.6 * cross-entropy (the pipeline's
                    default `DistillConfig`), backward, AdamW step, zero_grad.

Each case is warmed up (2 steps), then timed at least 5 times and until ~min-seconds have
passed; the JSON has the median seconds per step and tokens/s (batch x 64 / median).
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
THREADS = 2
VOCAB = 2048
BLOCK = 64
LAMBDA = 0.4
TAU = 1.0
# (layers, width, heads, batch) of the quickstart's default models
TEACHER = (4, 128, 4, 64)
STUDENT = (2, 64, 4, 32)


def model(layers, width, heads):
    config = GPT2Config(vocab_size=VOCAB, n_positions=BLOCK, n_embd=width, n_layer=layers,
                        n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).float()


def batch(size):
    g = torch.Generator().manual_seed(12345)
    ids = torch.randint(0, VOCAB, (size, BLOCK), generator=g)
    return ids, torch.ones_like(ids)


def pretrain_step(m, opt, ids, mask):
    loss = m(input_ids=ids, attention_mask=mask, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def distill_step(student, teacher, opt, ids, mask):
    logits = student(input_ids=ids, attention_mask=mask).logits[:, :-1]
    with torch.no_grad():
        t_logits = teacher(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = ids[:, 1:]
    vocab = logits.shape[-1]
    log_p_s = F.log_softmax(logits.reshape(-1, vocab) / TAU, dim=-1)
    log_p_t = F.log_softmax(t_logits.reshape(-1, vocab) / TAU, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * TAU * TAU
    ce = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
    loss = LAMBDA * kl + (1.0 - LAMBDA) * ce
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def adamw(m):
    return torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.01)


def timed(step, min_seconds):
    for _ in range(2):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "target" / "peer-bench" / "train_step_torch.json"))
    parser.add_argument("--min-seconds", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    rows = []
    for name, (layers, width, heads, size) in (("teacher", TEACHER), ("student", STUDENT)):
        m = model(layers, width, heads).train()
        opt = adamw(m)
        ids, mask = batch(size)
        median, n = timed(lambda: pretrain_step(m, opt, ids, mask), args.min_seconds)
        rows.append({"id": f"train_step/pretrain/{name}", "seconds": median, "samples": n,
                     "tokens_per_s": size * BLOCK / median})
        print(rows[-1], flush=True)
    teacher = model(*TEACHER[:3]).eval()
    student = model(*STUDENT[:3]).train()
    opt = adamw(student)
    ids, mask = batch(STUDENT[3])
    median, n = timed(lambda: distill_step(student, teacher, opt, ids, mask), args.min_seconds)
    rows.append({"id": "train_step/distill", "seconds": median, "samples": n,
                 "tokens_per_s": STUDENT[3] * BLOCK / median})
    print(rows[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "transformers": transformers.__version__,
            "threads": THREADS, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
