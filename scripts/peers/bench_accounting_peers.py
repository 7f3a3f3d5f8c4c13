#!/usr/bin/env python3
"""Wall-clock timings of the peer accountants, for comparison with the crate's
criterion benches.

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/peers/bench_accounting_peers.py > /tmp/peer_bench.json

Prints one JSON object.  Each item is ONE epsilon query including composition
(build the accountant, compose T steps, get_epsilon), or one noise calibration,
timed `reps` times in this process; the median wall time is reported.  Rep
count: one warm-up run first; if it took < 10 s it is discarded and
max(5, min(30, 30 s / t_warmup)) timed runs follow, otherwise it counts and
2 more runs follow (3 in all).

Points:
  A = (sigma=1.0, q=0.01,  T=10000,  delta=1e-5)
  B = (sigma=0.8, q=0.004, T=100000, delta=1e-5)
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings

warnings.simplefilter("ignore")

import dp_accounting  # noqa: E402
from dp_accounting import mechanism_calibration  # noqa: E402
from dp_accounting.pld import PLDAccountant  # noqa: E402
from dp_accounting.rdp import RdpAccountant  # noqa: E402
import prv_accountant  # noqa: E402
from opacus.accountants import PRVAccountant as OpacusPRV  # noqa: E402
from opacus.accountants import RDPAccountant as OpacusRDP  # noqa: E402
from opacus.accountants.utils import get_noise_multiplier  # noqa: E402

POINTS = {
    "A": {"sigma": 1.0, "q": 0.01, "steps": 10000, "delta": 1e-5},
    "B": {"sigma": 0.8, "q": 0.004, "steps": 100000, "delta": 1e-5},
}
EPS_ERROR = 0.01
BUDGET_S = 30.0
CALIB_BRACKET = (0.5, 2.0)
CALIB_TOL = 1e-4


def _event(sigma, q, steps):
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
        steps)


def _time(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def measure(fn):
    w, c, out = _time(fn)
    if w < 10.0:
        warm_excluded = True
        n = max(5, min(30, int(BUDGET_S // max(w, 1e-9))))
        walls, cpus = [], []
    else:
        warm_excluded = False
        n = 2
        walls, cpus = [w], [c]
    for _ in range(n):
        w, c, out = _time(fn)
        walls.append(w)
        cpus.append(c)
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "cpu_median_s": statistics.median(cpus),
        "reps": len(walls),
        "warmup_excluded": warm_excluded,
        "times_s": walls,
    }, out


# ---- one epsilon query (build + compose + get_epsilon) ----------------------

def opacus_rdp(p):
    acc = OpacusRDP()
    acc.history = [(p["sigma"], p["q"], p["steps"])]
    return {"epsilon": acc.get_epsilon(delta=p["delta"])}


def dpacc_rdp(p):
    acc = RdpAccountant()
    acc.compose(_event(p["sigma"], p["q"], p["steps"]))
    return {"epsilon": acc.get_epsilon(p["delta"])}


def opacus_prv(p):
    acc = OpacusPRV()
    acc.history = [(p["sigma"], p["q"], p["steps"])]
    return {"epsilon": float(acc.get_epsilon(delta=p["delta"], eps_error=EPS_ERROR))}


def prv_acc(p):
    prv = prv_accountant.PoissonSubsampledGaussianMechanism(
        sampling_probability=p["q"], noise_multiplier=p["sigma"])
    acc = prv_accountant.PRVAccountant(prvs=[prv], eps_error=EPS_ERROR,
                                       delta_error=p["delta"] / 1000,
                                       max_self_compositions=[p["steps"]])
    lo, est, up = acc.compute_epsilon(p["delta"], [p["steps"]])
    return {"epsilon": float(up), "lower": float(lo), "estimate": float(est),
            "upper": float(up)}


def dpacc_pld(p, interval):
    acc = PLDAccountant(value_discretization_interval=interval)
    acc.compose(_event(p["sigma"], p["q"], p["steps"]))
    return {"epsilon": acc.get_epsilon(p["delta"])}


# ---- calibration ---------------------------------------------------------------

def calib_opacus(p, target, kind):
    s = get_noise_multiplier(target_epsilon=target, target_delta=p["delta"],
                             sample_rate=p["q"], steps=p["steps"], accountant=kind)
    return {"sigma": float(s)}


def calib_dpacc(p, target, make_acc):
    def make_event(sigma):
        return _event(sigma, p["q"], p["steps"])
    s = mechanism_calibration.calibrate_dp_mechanism(
        make_acc, make_event, target, p["delta"],
        bracket_interval=mechanism_calibration.ExplicitBracketInterval(*CALIB_BRACKET),
        tol=CALIB_TOL)
    return {"sigma": float(s)}


def main():
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    items = []
    targets = {}

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    for name, p in POINTS.items():
        query_items = [
            ("opacus_rdp", lambda p=p: opacus_rdp(p),
             {"orders": "opacus RDPAccountant.DEFAULT_ALPHAS",
              "call": "RDPAccountant(); history=[(sigma,q,T)]; get_epsilon(delta)"}),
            ("dp_accounting_rdp", lambda p=p: dpacc_rdp(p),
             {"orders": "dp_accounting DEFAULT_RDP_ORDERS",
              "call": "RdpAccountant().compose(SelfComposedDpEvent(PoissonSampledDpEvent("
                      "q, GaussianDpEvent(sigma)), T)).get_epsilon(delta)"}),
            ("opacus_prv", lambda p=p: opacus_prv(p),
             {"eps_error": EPS_ERROR, "delta_error": "delta/1000 (Opacus default)",
              "call": "PRVAccountant(); history=[(sigma,q,T)]; get_epsilon(delta, "
                      "eps_error=0.01) (returns the upper bound)"}),
            ("prv_accountant", lambda p=p: prv_acc(p),
             {"eps_error": EPS_ERROR, "delta_error": p["delta"] / 1000,
              "call": "PRVAccountant(prvs=[PoissonSubsampledGaussianMechanism(q, sigma)], "
                      "eps_error=0.01, delta_error=delta/1000, max_self_compositions=[T])"
                      ".compute_epsilon(delta, [T]); epsilon = upper"}),
            ("dp_accounting_pld_1e-4", lambda p=p: dpacc_pld(p, 1e-4),
             {"value_discretization_interval": 1e-4,
              "call": "PLDAccountant(value_discretization_interval=1e-4).compose(event)"
                      ".get_epsilon(delta)"}),
            ("dp_accounting_pld_1e-3", lambda p=p: dpacc_pld(p, 1e-3),
             {"value_discretization_interval": 1e-3,
              "call": "PLDAccountant(value_discretization_interval=1e-3).compose(event)"
                      ".get_epsilon(delta)"}),
        ]
        results = {}
        for item, fn, settings in query_items:
            log(f"{name} {item} ...")
            timing, out = measure(fn)
            results[item] = out
            items.append({"point": name, "item": item, "kind": "epsilon_query",
                          "settings": settings, **timing, "result": out})
            log(f"   median {timing['median_s']:.4g}s reps {timing['reps']} -> {out}")

        # target epsilon for calibration: the epsilon that sigma reaches at the
        # point (dp_accounting PLD, interval 1e-4), rounded to 2 decimals.
        target = round(results["dp_accounting_pld_1e-4"]["epsilon"], 2)
        targets[name] = {"target_epsilon": target,
                         "source": "round(dp_accounting PLD(1e-4) epsilon at the point, 2)",
                         "unrounded": results["dp_accounting_pld_1e-4"]["epsilon"]}
        calib_items = [
            ("calibrate_opacus_rdp", lambda p=p, t=target: calib_opacus(p, t, "rdp"),
             lambda s, p=p: opacus_rdp({**p, "sigma": s}),
             {"call": "opacus.accountants.utils.get_noise_multiplier(target_epsilon, "
                      "target_delta=1e-5, sample_rate=q, steps=T, accountant='rdp')",
              "epsilon_tolerance": 0.01,
              "search": "doubling sigma_high from 10, then bisection on [0, sigma_high] "
                        "until target - eps(sigma_high) <= epsilon_tolerance"}),
            ("calibrate_opacus_prv", lambda p=p, t=target: calib_opacus(p, t, "prv"),
             lambda s, p=p: opacus_prv({**p, "sigma": s}),
             {"call": "get_noise_multiplier(..., accountant='prv')",
              "epsilon_tolerance": 0.01, "eps_error": 0.01,
              "delta_error": "delta/1000 (Opacus default)"}),
            ("calibrate_dp_accounting_rdp",
             lambda p=p, t=target: calib_dpacc(p, t, RdpAccountant),
             lambda s, p=p: dpacc_rdp({**p, "sigma": s}),
             {"call": "mechanism_calibration.calibrate_dp_mechanism(RdpAccountant, "
                      "lambda s: SelfComposedDpEvent(PoissonSampledDpEvent(q, "
                      "GaussianDpEvent(s)), T), target_epsilon, 1e-5, "
                      f"bracket_interval=ExplicitBracketInterval{CALIB_BRACKET}, "
                      f"tol={CALIB_TOL})",
              "tol": CALIB_TOL, "tol_meaning": "absolute, in sigma (scipy brentq xtol)",
              "bracket": list(CALIB_BRACKET)}),
            ("calibrate_dp_accounting_pld_1e-3",
             lambda p=p, t=target: calib_dpacc(
                 p, t, lambda: PLDAccountant(value_discretization_interval=1e-3)),
             lambda s, p=p: dpacc_pld({**p, "sigma": s}, 1e-3),
             {"call": "calibrate_dp_mechanism(lambda: PLDAccountant("
                      "value_discretization_interval=1e-3), ...)",
              "value_discretization_interval": 1e-3,
              "tol": CALIB_TOL, "tol_meaning": "absolute, in sigma (scipy brentq xtol)",
              "bracket": list(CALIB_BRACKET)}),
            ("calibrate_dp_accounting_pld_1e-4",
             lambda p=p, t=target: calib_dpacc(
                 p, t, lambda: PLDAccountant(value_discretization_interval=1e-4)),
             lambda s, p=p: dpacc_pld({**p, "sigma": s}, 1e-4),
             {"call": "calibrate_dp_mechanism(lambda: PLDAccountant("
                      "value_discretization_interval=1e-4), ...)",
              "value_discretization_interval": 1e-4,
              "tol": CALIB_TOL, "tol_meaning": "absolute, in sigma (scipy brentq xtol)",
              "bracket": list(CALIB_BRACKET)}),
        ]
        for item, fn, check, settings in calib_items:
            log(f"{name} {item} (target {target}) ...")
            try:
                timing, out = measure(fn)
                out = dict(out)
                out["epsilon_at_sigma"] = check(out["sigma"])["epsilon"]
                items.append({"point": name, "item": item, "kind": "calibration",
                              "target_epsilon": target, "delta": p["delta"],
                              "settings": settings, **timing, "result": out})
                log(f"   median {timing['median_s']:.4g}s reps {timing['reps']} -> {out}")
            except Exception as exc:  # record and go on
                items.append({"point": name, "item": item, "kind": "calibration",
                              "target_epsilon": target, "settings": settings,
                              "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
                log(f"   error {exc}")

    versions = {}
    for dist in ["dp-accounting", "prv-accountant", "opacus", "torch", "numpy",
                 "scipy", "mpmath"]:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    versions["python"] = platform.python_version()
    doc = {
        "generator": {
            "script": "scripts/peers/bench_accounting_peers.py",
            "command": " ".join([sys.executable] + sys.argv),
            "started_utc": started,
        },
        "versions": versions,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "platform": platform.platform(),
            "thread_env": {k: os.environ.get(k) for k in
                           ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]},
            "note": "all items run sequentially in one process; the peers' FFTs "
                    "(scipy.fft / numpy) are single-threaded",
        },
        "method": ("median wall time (time.perf_counter) of ONE query including "
                   "composition; warm-up run discarded when < 10 s, then "
                   "max(5, min(30, 30 s / t_warmup)) runs; else 3 runs including "
                   "the warm-up. cpu_median_s = median process CPU time."),
        "points": POINTS,
        "calibration_targets": targets,
        "items": items,
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
