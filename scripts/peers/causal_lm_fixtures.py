#!/usr/bin/env python3
"""Reference fixtures for the `causal-lm` crate (GPT-2 on burn), produced with HF peers.

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/peers/causal_lm_fixtures.py [OUT_DIR]

OUT_DIR defaults to crates/causal-lm/tests/fixtures/tiny-gpt2.  Writes:

* tokenizer.json     byte-level BPE (vocab 384) trained with `tokenizers` on LICENSE-APACHE;
* config.json,
  model.safetensors  a tiny GPT-2 (2 layers, 32 wide, 4 heads, 64 positions, tied
                     embeddings) with deterministic, deliberately non-trivial weights;
* parity.json        tokenizer encode/decode cases, float64 reference forward pass
                     (logits + hidden states) and a windowed perplexity evaluation.

Everything is deterministic (fixed seeds, single-threaded BPE training order is
deterministic in `tokenizers`).  The training settings below are mirrored by the Rust
side; change them in both places or not at all.
"""

import json
import math
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "crates" / "causal-lm" / "tests" / "fixtures" / "tiny-gpt2"
EOS = "<|endoftext|>"
BLOCK_SIZE = 16
PER_TEXT_MAX = 64


def r9(x):
    """Round a float to 9 significant digits (plain JSON number)."""
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(f"{x:.9g}")


def flat(t):
    return [r9(v) for v in t.detach().to(torch.float64).reshape(-1).tolist()]


def train_tokenizer():
    text = (REPO / "LICENSE-APACHE").read_text(encoding="utf-8")
    lines = [l for l in text.split("\n") if l.strip() != ""]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return tok, text


def build_model(vocab_size, eos_id):
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    # Re-draw every parameter so parity tests are sensitive (default init has zero
    # biases and unit LayerNorm gains, which would hide transposition/offset bugs).
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith(".bias"):
                p.copy_(noise * 0.05)
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                p.copy_(1.0 + noise * 0.1)
            else:
                p.copy_(noise * 0.15)
    model.eval()
    return model


def tokenizer_cases(tok, license_text):
    prose = license_text.split("\n")
    prose = [l.strip() for l in prose if l.strip()]
    texts = [
        prose[0],
        prose[5] if len(prose) > 5 else prose[-1],
        "   Licensed under the Apache License, Version 2.0   ",
        "Section 1.\n\nDefinitions.\n\n\n  (a) the end\n",
        "Copyright 2024 distil-dp 0123456789 3.14159 1,000,000",
        "Hello, world!? (yes) [no] {maybe}; \"quoted\" 'single' -- a/b\\c @#$%^&*_+=|~`<>",
        "café — naïve 東京 🙂",
        "before<|endoftext|>after <|endoftext|> tail",
        "\ttabs\tand  double  spaces \r\n windows line",
        "",
    ]
    cases = []
    for s in texts:
        ids = tok.encode(s).ids
        cases.append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return cases


def windows_nll(model, ids, block):
    """Sum of NLL and count of predicted tokens over non-overlapping windows."""
    nll_sum = 0.0
    count = 0
    for start in range(0, len(ids), block):
        w = ids[start:start + block]
        if len(w) < 2:
            continue
        x = torch.tensor([w], dtype=torch.long)
        with torch.no_grad():
            logits = model(x).logits[0]  # [n, V], float64
        logp = torch.log_softmax(logits[:-1], dim=-1)
        tgt = x[0, 1:]
        nll = -logp.gather(1, tgt[:, None])[:, 0]
        nll_sum += float(nll.sum())
        count += len(w) - 1
    return nll_sum, count


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)

    tok, license_text = train_tokenizer()
    tok.save(str(out / "tokenizer.json"))
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    eos_id = tok.token_to_id(EOS)
    print(f"tokenizer: vocab_size={vocab_size} eos_id={eos_id}")

    model = build_model(vocab_size, eos_id)
    model.save_pretrained(str(out), safe_serialization=True)
    gc = out / "generation_config.json"
    if gc.exists():
        gc.unlink()

    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        print("safetensors keys:")
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            print(f"  {k}  {str(t.dtype).replace('torch.', '')}  {list(t.shape)}")

    # Float64 reference from the *saved* float32 weights.
    model = model.double().eval()

    # --- forward parity -------------------------------------------------------
    stream = tok.encode(license_text).ids
    input_ids = [stream[100:112], stream[400:412]]
    x = torch.tensor(input_ids, dtype=torch.long)
    with torch.no_grad():
        o = model(x, output_hidden_states=True)
    forward = {
        "input_ids": input_ids,
        "shape": [2, 12, vocab_size],
        "logits": flat(o.logits),
        "hidden_states": [flat(h) for h in o.hidden_states],
    }

    # --- perplexity -----------------------------------------------------------
    mit = (REPO / "LICENSE-MIT").read_text(encoding="utf-8")
    texts = [l for l in mit.split("\n") if l.strip() != ""]
    all_ids = tok.encode("\n\n".join(texts)).ids
    nll_sum, count = windows_nll(model, all_ids, BLOCK_SIZE)
    mean = nll_sum / count
    per_text = []
    for t in texts:
        ids = tok.encode(t).ids[:PER_TEXT_MAX]
        if len(ids) < 2:
            per_text.append(None)
            continue
        s, c = windows_nll(model, ids, PER_TEXT_MAX)
        per_text.append(r9(s / c))
    perplexity = {
        "block_size": BLOCK_SIZE,
        "texts": texts,
        "joiner": "\n\n",
        "stream_tokens": len(all_ids),
        "nll_sum": r9(nll_sum),
        "predicted_tokens": count,
        "mean_nll": r9(mean),
        "perplexity": r9(math.exp(mean)),
        "per_text_max_tokens": PER_TEXT_MAX,
        "per_text": per_text,
    }
    print(f"perplexity: stream_tokens={len(all_ids)} predicted={count} "
          f"nll_sum={nll_sum:.6f} mean_nll={mean:.6f} ppl={math.exp(mean):.6f}")

    parity = {
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "reference_dtype": "float64 (from float32 saved weights)",
        "vocab_size": vocab_size,
        "eos_id": eos_id,
        "tokenizer": tokenizer_cases(tok, license_text),
        "forward": forward,
        "perplexity": perplexity,
    }
    with open(out / "parity.json", "w", encoding="utf-8") as f:
        json.dump(parity, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    total = 0
    for p in sorted(out.iterdir()):
        total += p.stat().st_size
        print(f"  {p.name}: {p.stat().st_size} bytes")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    main()
