#!/usr/bin/env python3
"""Reference per-example clipped gradient sums from Opacus, for crates/dp-optim's tests.

Model (same as crates/dp-optim/tests/common): Linear(4, 6) -> LayerNorm(6) -> Linear(6, 2),
per-example loss sum((out - y)^2). Opacus's GradSampleModule gives per-sample gradients; they
are clipped flat (over all parameters) with Opacus's own factor min(1, C / (norm + 1e-6)) and
summed. Weights are written in burn's layout (Linear weight [in, out]).

Usage (repository root): /path/to/venv/bin/python scripts/peers/dp_optim_fixtures.py
Writes crates/dp-optim/tests/fixtures/opacus_clipping.json.
"""

import json
import pathlib

import opacus
import torch
from opacus import GradSampleModule

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/dp-optim/tests/fixtures/opacus_clipping.json"


def main():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.Linear(6, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.8)
    n = 7
    x = torch.randn(n, 4, dtype=torch.float64) * 3.0
    y = torch.randn(n, 2, dtype=torch.float64)
    gsm = GradSampleModule(model, loss_reduction="sum")
    gsm.zero_grad()
    out = gsm(x)
    loss = ((out - y) ** 2).sum()  # sum of per-example losses
    loss.backward()
    names = [name.replace("_module.", "") for name, _ in gsm.named_parameters()]
    shapes = [p.shape for p in gsm.parameters()]
    samples = [p.grad_sample.reshape(n, -1) for p in gsm.parameters()]
    norms = torch.cat(samples, dim=1).norm(dim=1)
    cases = []
    for c in [0.1, 1.0, 20.0, 37.0, 1e6]:  # all clipped, mixed, none
        factor = (c / (norms + 1e-6)).clamp(max=1.0)
        named = {}
        for name, shape, smp in zip(names, shapes, samples):
            total = (smp * factor[:, None]).sum(0).reshape(shape)
            if total.dim() == 2:  # torch Linear weight [out, in] -> burn [in, out]
                total = total.t()
            named[name] = total.flatten().tolist()
        cases.append({"max_grad_norm": c, "per_sample_norms": norms.tolist(), "clipped_sum": named})
    weights = {}
    for name, p in model.named_parameters():
        t = p.detach()
        if t.dim() == 2:
            t = t.t()
        weights[name] = {"shape": list(t.shape), "values": t.flatten().tolist()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "versions": {"opacus": opacus.__version__, "torch": torch.__version__},
        "model": "Linear(4,6) -> LayerNorm(6) -> Linear(6,2); loss sum((out-y)^2) per example",
        "layout": "burn: Linear weight [in, out]; parameter names are torch's (0 = first Linear, 1 = LayerNorm, 2 = second Linear)",
        "weights": weights,
        "x": x.tolist(),
        "y": y.tolist(),
        "cases": cases,
    }, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
