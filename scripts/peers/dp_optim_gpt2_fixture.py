#!/usr/bin/env python3
"""Reference flat-clipped per-example gradient sums from Opacus for the tiny GPT-2 fixture.

Model: GPT2LMHeadModel loaded from crates/causal-lm/tests/fixtures/tiny-gpt2 (vocab 384, width 32,
2 layers, 64 positions, tied wte / lm_head), converted to float64. All dropout rates are 0, so
train and eval mode compute the same function; the Opacus pass runs in train mode because
Opacus's hooks only record activations of modules in training mode (in eval mode backward
fails with "No activations detected").
Batch: 5 sequences of 12 token ids (torch.manual_seed(1); randint(0, 384)); ids[0, 5] is set to
ids[0, 2] (a token repeated inside a sequence) and ids[1, 3] to 0 (token id 0 present). No
padding, no attention mask. Per-example loss: mean over the 11 next-token predictions of the
cross-entropy of logits[:, :-1] against ids[:, 1:] (HF's causal-LM loss, per sequence); the
loss given to backward is the SUM of the per-example losses.

Per-example gradients come from Opacus GradSampleModule(model, loss_reduction="sum"):

* transformers' Conv1D (weight [in, out]) has no grad sampler of its own in Opacus 1.6;
  Opacus then falls back to functorch (per-module vmap(grad)). The script checks that
  fallback and then registers an einsum grad sampler for Conv1D
  (opacus.grad_sample.register_grad_sampler) and uses that for the fixture; both are
  verified.
* The tied wte / lm_head weight: Opacus counts the forward uses of each parameter
  (p._forward_counter) and sums the per-sample gradients of both uses (Embedding + Linear
  grad samplers) before promoting them to p.grad_sample, so it gets the full gradient.
* Positions: HF GPT-2 builds position_ids of shape [1, T] when none are given, so wpe sees
  a batch of 1 and Opacus silently returns wpe.weight.grad_sample of shape [1, 64, 32]: the
  whole batch's gradient as a single "sample". The script passes position_ids = arange(T)
  expanded to [B, T]; the forward values are identical.

All Opacus per-sample gradients are checked against an exact reference: a plain
per-example backward loop on an untouched copy of the model (max abs difference must be
<= 1e-10, else exit 1).

Flat clipping over all unique parameters with Opacus's factor min(1, C / (norm + 1e-6)), at
C = 0.5 * min(norms) (all clipped), median(norms) (mixed; the median example itself gets
factor C / (C + 1e-6), just below 1) and 1e6 (none); each case also stores the factors. For each case and
each unique parameter (HF name without "transformer."; lm_head.weight is wte.weight) the
JSON holds the shape (HF layout = burn layout: Conv1D weight [in, out], wte [vocab, n_embd]),
the L2 norm of the clipped sum, probe = sum_k g[k] * sin(0.37 k + 1.0) over the row-major
flattened clipped sum, and its first 8 row-major entries.

Usage (repository root): /path/to/venv/bin/python scripts/peers/dp_optim_gpt2_fixture.py
Writes crates/dp-optim/tests/fixtures/opacus_gpt2.json.
"""

import copy
import json
import math
import os
import pathlib
import platform
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import opacus  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from opacus import GradSampleModule  # noqa: E402
from opacus.grad_sample import register_grad_sampler  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402
from transformers.pytorch_utils import Conv1D  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "crates/causal-lm/tests/fixtures/tiny-gpt2"
OUT = REPO / "crates/dp-optim/tests/fixtures/opacus_gpt2.json"
BATCH, SEQ = 5, 12
TOL = 1e-10
HEAD = 8


def compute_conv1d_grad_sample(layer, activations, backprops):
    """Per-sample gradients of transformers' Conv1D (y = x @ W + b, W [in, out])."""
    a = activations[0].to(backprops.dtype)
    ret = {}
    if layer.weight.requires_grad:
        ret[layer.weight] = torch.einsum("n...i,n...j->nij", a, backprops)
    if layer.bias is not None and layer.bias.requires_grad:
        ret[layer.bias] = torch.einsum("n...k->nk", backprops)
    return ret


def make_batch(vocab):
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (BATCH, SEQ))
    ids[0, 5] = ids[0, 2]  # a token repeated inside a sequence
    ids[1, 3] = 0  # token id 0 (<|endoftext|>) present
    return ids


def per_example_losses(model, ids):
    pos = torch.arange(ids.shape[1]).expand(ids.shape[0], -1)
    logits = model(input_ids=ids, position_ids=pos).logits
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                         reduction="none")
    return ce.view(ids.shape[0], -1).mean(dim=1)


def unique_params(model):
    """(name without 'transformer.', parameter) for each unique parameter; named_parameters
    de-duplicates, so the tied lm_head.weight is reported once as wte.weight."""
    out = []
    for name, p in model.named_parameters():
        assert name.startswith("transformer."), name
        out.append((name[len("transformer."):], p))
    return out


def reference_grads(model, ids):
    """Exact per-example gradients by a per-example backward loop: {name: [B, *shape]}."""
    params = unique_params(model)
    rows = {name: [] for name, _ in params}
    for i in range(ids.shape[0]):
        model.zero_grad(set_to_none=True)
        per_example_losses(model, ids[i:i + 1]).sum().backward()
        for name, p in params:
            rows[name].append(p.grad.detach().clone())
    model.zero_grad(set_to_none=True)
    return {name: torch.stack(v) for name, v in rows.items()}


def opacus_grads(model, ids):
    model.train()  # Opacus only captures activations in training mode; dropout is 0
    gsm = GradSampleModule(model, loss_reduction="sum")
    gsm.zero_grad(set_to_none=True)
    losses = per_example_losses(gsm, ids)
    losses.sum().backward()
    out = {}
    for name, p in unique_params(model):
        gs = p.grad_sample
        assert torch.is_tensor(gs) and gs.shape == (ids.shape[0], *p.shape), (name, type(gs))
        out[name] = gs.detach().clone()
    gsm._close()
    return out, losses.detach()


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def main():
    # The first module (wte) gets no input that requires grad; the hook still fires as needed.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    hf_logging = transformers.utils.logging
    hf_logging.set_verbosity_error()
    torch.set_default_dtype(torch.float64)
    base = GPT2LMHeadModel.from_pretrained(MODEL_DIR).to(torch.float64).eval()
    assert base.lm_head.weight is base.transformer.wte.weight, "embeddings not tied"
    cfg = base.config
    assert cfg.resid_pdrop == cfg.embd_pdrop == cfg.attn_pdrop == 0.0
    ids = make_batch(cfg.vocab_size)
    assert (ids == 0).any()

    ref = reference_grads(copy.deepcopy(base), ids)

    # 1. Opacus as shipped: Conv1D has no grad sampler -> functorch fallback.
    from opacus.grad_sample import GradSampleModule as _GSM
    assert Conv1D not in _GSM.GRAD_SAMPLERS
    ft, _ = opacus_grads(copy.deepcopy(base), ids)
    diff_ft = max_diff(ft, ref)
    print(f"Opacus (functorch fallback for Conv1D) vs exact: max abs diff {diff_ft:.3e}")

    # 2. With an einsum grad sampler registered for Conv1D (used for the fixture).
    register_grad_sampler(Conv1D)(compute_conv1d_grad_sample)
    model = copy.deepcopy(base)
    assert model.lm_head.weight is model.transformer.wte.weight
    gs, losses = opacus_grads(model, ids)
    diff = max_diff(gs, ref)
    print(f"Opacus (registered Conv1D sampler) vs exact: max abs diff {diff:.3e}")
    wte_rel = ((gs["wte.weight"] - ref["wte.weight"]).abs().max()
               / ref["wte.weight"].abs().max()).item()
    print(f"  tied wte.weight: max abs diff {max_diff({'w': gs['wte.weight']}, {'w': ref['wte.weight']}):.3e}"
          f" (relative {wte_rel:.3e})")
    if not (diff <= TOL and diff_ft <= TOL):
        print(f"FAIL: Opacus per-sample gradients differ from the exact reference by more than {TOL}")
        sys.exit(1)

    names = list(gs)
    flat = torch.cat([gs[n].reshape(BATCH, -1) for n in names], dim=1)
    norms = flat.norm(dim=1)
    print("per-example losses:", [round(x, 6) for x in losses.tolist()])
    print("per-sample norms:", norms.tolist())

    cases = []
    for c in [0.5 * norms.min().item(), norms.median().item(), 1e6]:
        factor = (c / (norms + 1e-6)).clamp(max=1.0)
        named = {}
        for n in names:
            total = (gs[n] * factor.view(-1, *([1] * (gs[n].dim() - 1)))).sum(0)
            v = total.flatten()
            k = torch.arange(v.numel(), dtype=torch.float64)
            named[n] = {
                "shape": list(total.shape),
                "l2": v.norm().item(),
                "probe": (v * torch.sin(0.37 * k + 1.0)).sum().item(),
                "head": v[:HEAD].tolist(),
            }
        cases.append({"max_grad_norm": c, "clip_factors": factor.tolist(), "params": named})
        print(f"C = {c:.6g}: factors {[round(f, 6) for f in factor.tolist()]}")

    doc = {
        "versions": {"opacus": opacus.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "description": (
            "Tiny GPT-2 fixture (this directory) in float64, dropout 0. Per-example loss = mean over "
            "the 11 next-token predictions of cross-entropy(logits[:, :-1], ids[:, 1:]); batch loss = "
            "SUM of per-example losses. Per-sample gradients from Opacus GradSampleModule(loss_reduction="
            "'sum') with an einsum grad sampler registered for transformers' Conv1D (checked against the "
            "functorch fallback and an exact per-example backward loop, max abs diff "
            f"{max(diff, diff_ft):.1e}); position_ids passed expanded to [B, T]; tied wte/lm_head gets the "
            "sum of both uses. Flat clipping over all unique parameters, factor min(1, C/(norm+1e-6)); "
            "params[NAME] describes the clipped sum: shape (HF layout: Conv1D weight [in, out], wte "
            "[vocab, n_embd]), l2 norm, probe = sum_k g[k]*sin(0.37*k+1.0) over the row-major flattened "
            "entries, head = first 8 row-major entries. NAME = HF name without 'transformer.'; "
            "lm_head.weight is wte.weight."),
        "loss": "sum over examples of mean over positions of next-token cross-entropy",
        "ids": ids.tolist(),
        "per_example_losses": losses.tolist(),
        "per_sample_norms": norms.tolist(),
        "opacus_vs_exact_max_abs_diff": {"registered_conv1d_sampler": diff, "functorch_fallback": diff_ft},
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
