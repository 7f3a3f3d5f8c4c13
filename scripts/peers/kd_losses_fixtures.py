#!/usr/bin/env python3
"""Reference values for crates/kd-losses from PyTorch (float64).

Per position: forward KL = tau^2 * kl_div(log_softmax(s/tau), log_softmax(t/tau),
log_target=True, reduction='none').sum(-1); reverse KL likewise with the roles swapped;
generalised JSD(beta) = beta*KL(pT||M) + (1-beta)*KL(pS||M), M = beta*pT + (1-beta)*pS, times
tau^2 (written out with torch ops, as no torch function computes it); cross-entropy =
cross_entropy(reduction='none', label_smoothing=eps, ignore_index=-100); hidden MSE =
mse_loss(reduction='none').mean(-1). Cases: moderate logits, and large logits (x 60) for
stability.

Usage (repository root): /path/to/venv/bin/python scripts/peers/kd_losses_fixtures.py
Writes crates/kd-losses/tests/fixtures/torch_losses.json.
"""

import json
import pathlib

import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/kd-losses/tests/fixtures/torch_losses.json"


def kl(log_a, log_b):
    return F.kl_div(log_b, log_a, log_target=True, reduction="none").sum(-1)


def main():
    torch.manual_seed(0)
    b, t, v, d = 2, 4, 7, 3
    cases = []
    for scale in [3.0, 60.0]:
        s = torch.randn(b, t, v, dtype=torch.float64) * scale
        te = torch.randn(b, t, v, dtype=torch.float64) * scale
        targets = torch.randint(0, v, (b, t))
        mask = torch.ones(b, t, dtype=torch.long)
        mask[1, 2:] = 0
        hs = torch.randn(b, t, d, dtype=torch.float64)
        ht = torch.randn(b, t, d, dtype=torch.float64)
        out = {"scale": scale, "student": s.tolist(), "teacher": te.tolist(),
               "targets": targets.tolist(), "mask": mask.tolist(),
               "hidden_student": hs.tolist(), "hidden_teacher": ht.tolist(), "values": {}}
        for tau in [1.0, 2.0]:
            ls = F.log_softmax(s / tau, -1)
            lt = F.log_softmax(te / tau, -1)
            out["values"][f"forward_kl_tau{tau}"] = (tau * tau * kl(lt, ls)).tolist()
            out["values"][f"reverse_kl_tau{tau}"] = (tau * tau * kl(ls, lt)).tolist()
            for beta in [0.1, 0.5]:
                lm = torch.logsumexp(torch.stack([lt + torch.log(torch.tensor(beta, dtype=torch.float64)),
                                                  ls + torch.log(torch.tensor(1 - beta, dtype=torch.float64))]), 0)
                jsd = beta * kl(lt, lm) + (1 - beta) * kl(ls, lm)
                out["values"][f"jsd{beta}_tau{tau}"] = (tau * tau * jsd).tolist()
        ignored = targets.clone()
        ignored[mask == 0] = -100
        for eps in [0.0, 0.1]:
            ce = F.cross_entropy(s.reshape(-1, v), ignored.reshape(-1), reduction="none",
                                 label_smoothing=eps, ignore_index=-100).reshape(b, t)
            out["values"][f"ce_eps{eps}"] = ce.tolist()
        out["values"]["mse"] = F.mse_loss(hs, ht, reduction="none").mean(-1).tolist()
        cases.append(out)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"versions": {"torch": torch.__version__}, "cases": cases}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
