#!/usr/bin/env python3
"""Reference fixtures for the `dp-accounting` crate, produced with peer libraries.

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/peers/accounting_fixtures.py \
        crates/dp-accounting/tests/fixtures

Writes three JSON files into OUT_DIR:

* rdp_orders.json    per-step RDP of the Poisson-subsampled Gaussian (add/remove)
                     from Opacus, dp_accounting and an exact mpmath computation;
* epsilon_grid.json  epsilon(delta) on a (sigma, q, T, delta) grid from Opacus RDP,
                     dp_accounting RDP, prv_accountant, Opacus PRV, dp_accounting PLD;
* delta_grid.json    delta(epsilon) on a small grid.

Every peer call (and every mpmath evaluation) runs in a worker subprocess
(multiprocessing, spawn context) with a wall-clock timeout and an address-space
limit (RLIMIT_AS).  A call that raises, hangs or dies is recorded as
{"error": "..."} instead of aborting the script.  Workers are reused between
calls (imports are slow, Opacus pulls in torch) but are replaced after any
failure, after a timeout, and whenever their resident memory exceeds a
threshold, so a failing call never affects another one.

Non-finite floats are written as the strings "inf", "-inf" and "nan" (strict
JSON has no representation for them); every other float is written with its
full repr (nothing is rounded).
"""

import argparse
import datetime
import importlib.metadata
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import signal
import sys
import time
import traceback
import warnings

# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

RDP_SIGMAS = [0.5, 0.8, 1.0, 2.0, 5.0]
RDP_QS = [0.001, 0.01, 0.1, 0.5, 0.99]
RDP_INT_ORDERS = [2, 3, 5, 8, 16, 32, 63, 128, 256, 1024]
RDP_FRAC_ORDERS = [1.1, 1.5, 2.5, 4.7, 7.3, 10.9]

EPS_SIGMAS = [0.5, 0.8, 1.0, 2.0, 5.0]
EPS_QS = [0.001, 0.01, 0.1, 1.0]
EPS_STEPS = [1, 100, 10000, 100000]
EPS_DELTAS = [1e-5, 1e-8]

DELTA_SIGMAS = [0.8, 1.0, 2.0]
DELTA_QS = [0.01, 0.1]
DELTA_STEPS = [100, 10000]
DELTA_EPSILONS = [0.5, 1.0, 4.0]

PRV_EPS_ERROR = 0.01
PLD_INTERVAL = 1e-4
# delta_error used for the delta(epsilon) queries of the PRV accountants.
PRV_DELTA_QUERY_DELTA_ERROR = 1e-12

MPMATH_DPS = 60
MPMATH_AGREEMENT = 1e-20

TIMEOUT_S = 180.0          # wall clock per peer call
MEM_LIMIT_BYTES = 8 << 30  # RLIMIT_AS headroom per worker, see _set_memory_limit
RECYCLE_RSS_BYTES = 1536 << 20
N_WORKERS = 2

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

SCRIPT_PATH = "scripts/peers/accounting_fixtures.py"

PRV_ACCOUNTANT_CALL = (
    "prv_accountant.Accountant(noise_multiplier=sigma, sampling_probability=q, "
    "delta=delta, eps_error=0.01, max_compositions=T).compute_epsilon("
    "num_compositions=T) -> (lower, estimate, upper). In prv_accountant 0.2.0 "
    "`Accountant` has no delta_error argument: it hard-codes "
    "delta_error=delta/1000 (prv_accountant/accountant.py:149) and passes "
    "eps_error through; mesh_size must be None. It is deprecated in favour of "
    "PRVAccountant(prvs=PoissonSubsampledGaussianMechanism(q, sigma), "
    "eps_error, delta_error, max_self_compositions=[T]), which it wraps."
)

# --------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------


def _vm_size_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _family_imports(family):
    warnings.simplefilter("ignore")
    import numpy  # noqa: F401
    import scipy  # noqa: F401
    import mpmath  # noqa: F401
    import dp_accounting  # noqa: F401
    import dp_accounting.pld  # noqa: F401
    import dp_accounting.rdp  # noqa: F401
    import prv_accountant  # noqa: F401
    if family == "opacus":
        import opacus.accountants  # noqa: F401
        import opacus.accountants.analysis.rdp  # noqa: F401
        import torch
        torch.set_num_threads(1)


def _set_memory_limit(extra_bytes):
    """RLIMIT_AS = (address space after the family's imports) + extra_bytes.

    torch alone reserves ~3.3 GiB of address space at import time, so a flat
    limit would give Opacus calls less room than the others; this way every
    call has the same 8 GiB of address space for its own allocations.
    """
    base = _vm_size_bytes()
    limit = base + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return base, limit


def _short_error(exc):
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    msg = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return msg[:300]


def _worker_main(conn, family, extra_bytes):
    try:
        _family_imports(family)
        base, limit = _set_memory_limit(extra_bytes)
        conn.send(("ready", {"vm_base": base, "rlimit_as": limit}))
    except BaseException as exc:  # pragma: no cover
        conn.send(("dead", _short_error(exc)))
        return
    # Collect log records (dp_accounting reports e.g. a non-converging
    # fractional-order series through absl logging, not through warnings).
    import logging
    log_records = []

    class _Collect(logging.Handler):
        def emit(self, record):
            log_records.append(record.getMessage().splitlines()[0][:200])

    root = logging.getLogger()
    root.addHandler(_Collect(level=logging.WARNING))
    root.setLevel(logging.WARNING)
    while True:
        log_records.clear()
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        name, kwargs = msg
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = TASKS[name](**kwargs)
            seconds = time.perf_counter() - t0
            warn_msgs = sorted({str(w.message).splitlines()[0][:200]
                                for w in caught
                                if not issubclass(w.category, DeprecationWarning)}
                               | set(log_records))
            conn.send(("ok", result, seconds, warn_msgs, _rss_bytes()))
        except MemoryError as exc:
            conn.send(("err", _short_error(exc) or "MemoryError",
                       time.perf_counter() - t0, _rss_bytes()))
        except BaseException as exc:
            conn.send(("err", _short_error(exc), time.perf_counter() - t0,
                       _rss_bytes()))


# --------------------------------------------------------------------------
# Task functions (run inside workers)
# --------------------------------------------------------------------------


def task_rdp_opacus(q, sigma, order):
    from opacus.accountants.analysis import rdp as o_rdp
    v = o_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=[order])
    return float(v[0])


def task_rdp_dpacc(q, sigma, order):
    from dp_accounting.rdp import rdp_privacy_accountant as r
    v = r._compute_rdp_poisson_subsampled_gaussian(q, sigma, [order])
    return float(v[0])


def _mp_log_a_int(q, sigma, alpha):
    from mpmath import mp, mpf, binomial, exp, log
    q = mpf(q)
    s2 = mpf(sigma) ** 2
    total = mpf(0)
    for i in range(alpha + 1):
        total += (binomial(alpha, i) * (1 - q) ** (alpha - i) * q ** i
                  * exp(mpf(i * i - i) / (2 * s2)))
    return log(total)


def _mp_log_a_quad(q, sigma, alpha, variant):
    """log A_alpha by quadrature of E_{z~N(0,s^2)}[((1-q)+q e^{(2z-1)/(2s^2)})^alpha]."""
    import numpy as np
    from mpmath import mp, mpf, exp, log, sqrt, pi, quad, inf
    qm, sm, am = mpf(q), mpf(sigma), mpf(alpha)
    s2 = sm ** 2
    lognorm = -log(sm * sqrt(2 * pi))

    def logf(z):
        u = (2 * z - 1) / (2 * s2)
        return lognorm - z * z / (2 * s2) + am * log((1 - qm) + qm * exp(u))

    # The integrand is evaluated as exp(logf(z) - shift), with shift the
    # log-integrand's maximum: mpmath's quad stops on an absolute error
    # estimate (~2^-prec), so an O(1) integrand makes that a relative one.
    shift = [mpf(0)]

    def f(z):
        return exp(logf(z) - shift[0])

    # Locate the local maxima of the log-integrand on a double-precision grid
    # (there can be two: one near 0 and one near alpha).
    lo, hi = -12.0 * sigma, alpha + 12.0 * sigma
    zs = np.linspace(lo, hi, 4001)
    u = (2 * zs - 1) / (2 * sigma ** 2)
    lf = -zs * zs / (2 * sigma ** 2) + alpha * np.logaddexp(
        np.log1p(-q), np.log(q) + u)
    modes = [float(zs[i]) for i in range(1, len(zs) - 1)
             if lf[i] >= lf[i - 1] and lf[i] >= lf[i + 1]]
    # refine each mode with mpmath (Newton on the derivative)
    refined = []
    for m0 in modes:
        try:
            m = mp.findroot(lambda z: mp.diff(logf, z), mpf(m0))
            refined.append(float(m))
        except Exception:
            refined.append(m0)
    shift[0] = max(logf(mpf(m)) for m in refined) if refined else logf(mpf(0))
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    if variant == 0:
        ks = [0, 1, 2, 4, 8, 16]
        method = "tanh-sinh"
    else:
        ks = [0, 1.5, 3, 6, 12, 24]
        method = "gauss-legendre"
    pts = {0.0, 1.0, z0}
    for m in refined:
        for k in ks:
            pts.add(m + k * sigma)
            pts.add(m - k * sigma)
    pts = sorted(pts)
    # merge points closer than 1e-9 to avoid degenerate intervals
    merged = []
    for p in pts:
        if not merged or p - merged[-1] > 1e-9:
            merged.append(p)
    points = [-inf] + [mpf(p) for p in merged] + [inf]
    val = quad(f, points, method=method, maxdegree=10)
    return log(val) + shift[0], refined, z0


def task_rdp_mpmath(q, sigma, order):
    from mpmath import mp, mpf
    mp.dps = MPMATH_DPS
    if float(order).is_integer():
        la = _mp_log_a_int(q, sigma, int(order))
        return {"mpmath": float(la / (mpf(order) - 1)), "mpmath_method": "binomial"}
    la1, modes, z0 = _mp_log_a_quad(q, sigma, order, 0)
    la2, _, _ = _mp_log_a_quad(q, sigma, order, 1)
    r1 = la1 / (mpf(order) - 1)
    r2 = la2 / (mpf(order) - 1)
    dis = abs(r1 - r2) / abs(r1)
    out = {"mpmath": float(r1), "mpmath_method": "quad",
           "mpmath_rel_disagreement": float(dis)}
    return out


def task_mpmath_selfcheck(q, sigma, order):
    """quad vs exact binomial sum at an integer order (validates the quad code)."""
    from mpmath import mp, mpf
    mp.dps = MPMATH_DPS
    exact = _mp_log_a_int(q, sigma, int(order)) / (order - 1)
    la1, _, _ = _mp_log_a_quad(q, sigma, float(order), 0)
    la2, _, _ = _mp_log_a_quad(q, sigma, float(order), 1)
    return {"q": q, "sigma": sigma, "order": order,
            "rel_err_tanh_sinh": float(abs(la1 / (order - 1) - exact) / exact),
            "rel_err_gauss_legendre": float(abs(la2 / (order - 1) - exact) / exact)}


def _event(sigma, q, steps):
    import dp_accounting
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
        steps)


def task_eps_opacus_rdp(sigma, q, steps, deltas):
    from opacus.accountants.analysis import rdp as o_rdp
    from opacus.accountants.rdp import RDPAccountant
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = o_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    out = {}
    for d in deltas:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            eps, order = o_rdp.get_privacy_spent(orders=orders, rdp=rdp, delta=d)
        r = {"epsilon": float(eps), "order": float(order)}
        w = [str(x.message).splitlines()[0] for x in caught]
        if w:
            r["warning"] = w[0][:200]
        out[repr(d)] = r
    return out


def task_eps_dpacc_rdp(sigma, q, steps, deltas):
    from dp_accounting.rdp import RdpAccountant
    acc = RdpAccountant()
    acc.compose(_event(sigma, q, steps))
    out = {}
    for d in deltas:
        eps, order = acc.get_epsilon_and_optimal_order(d)
        out[repr(d)] = {"epsilon": float(eps), "order": float(order)}
    return out


def task_eps_prv(sigma, q, steps, delta):
    import prv_accountant
    t0 = time.perf_counter()
    acc = prv_accountant.Accountant(noise_multiplier=sigma, sampling_probability=q,
                                    delta=delta, eps_error=PRV_EPS_ERROR,
                                    max_compositions=steps)
    lo, est, up = acc.compute_epsilon(num_compositions=steps)
    return {"lower": float(lo), "estimate": float(est), "upper": float(up),
            "eps_error": PRV_EPS_ERROR, "delta_error": delta / 1000,
            "seconds": time.perf_counter() - t0}


def task_eps_opacus_prv(sigma, q, steps, delta):
    from opacus.accountants import PRVAccountant
    t0 = time.perf_counter()
    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    delta_error = delta / 1000
    dprv = acc._get_dprv(eps_error=PRV_EPS_ERROR, delta_error=delta_error)
    lo, est, up = dprv.compute_epsilon(delta, delta_error, PRV_EPS_ERROR)
    return {"estimate": float(est), "lower": float(lo), "upper": float(up),
            "get_epsilon": float(up), "eps_error": PRV_EPS_ERROR,
            "delta_error": delta_error, "domain_size": int(dprv.domain.size),
            "seconds": time.perf_counter() - t0}


def task_eps_dpacc_pld(sigma, q, steps, deltas, interval, gaussian_event=False):
    import dp_accounting
    from dp_accounting.pld import PLDAccountant
    t0 = time.perf_counter()
    acc = PLDAccountant(value_discretization_interval=interval)
    if gaussian_event:
        ev = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), steps)
    else:
        ev = _event(sigma, q, steps)
    acc.compose(ev)
    out = {repr(d): float(acc.get_epsilon(d)) for d in deltas}
    secs = time.perf_counter() - t0
    return {"epsilons": out, "seconds": secs}


def task_eps_exact_gaussian(sigma, steps, deltas):
    """Exact epsilon(delta) of the T-fold Gaussian mechanism (q = 1):
    delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu), mu = sqrt(T)/sigma."""
    from mpmath import mp, mpf, ncdf, exp, sqrt, findroot, log
    mp.dps = 50
    mu = sqrt(mpf(steps)) / mpf(sigma)

    def dlt(e):
        return ncdf(mu / 2 - e / mu) - exp(e) * ncdf(-mu / 2 - e / mu)

    out = {}
    for d in deltas:
        dd = mpf(d)
        if dlt(mpf(0)) <= dd:
            out[repr(d)] = 0.0
            continue
        lo, hi = mpf(0), mpf(1)
        while dlt(hi) > dd:
            lo, hi = hi, hi * 2
        for _ in range(200):  # bisection to full double precision
            mid = (lo + hi) / 2
            if dlt(mid) > dd:
                lo = mid
            else:
                hi = mid
            if hi - lo < mpf(10) ** -30 * hi:
                break
        out[repr(d)] = float((lo + hi) / 2)
    return out


def task_delta_dpacc_rdp(sigma, q, steps, epsilons):
    from dp_accounting.rdp import RdpAccountant
    acc = RdpAccountant()
    acc.compose(_event(sigma, q, steps))
    out = {}
    for e in epsilons:
        d, order = acc.get_delta_and_optimal_order(e)
        out[repr(e)] = {"delta": float(d), "order": float(order)}
    return out


def task_delta_dpacc_pld(sigma, q, steps, epsilons, interval):
    from dp_accounting.pld import PLDAccountant
    t0 = time.perf_counter()
    acc = PLDAccountant(value_discretization_interval=interval)
    acc.compose(_event(sigma, q, steps))
    out = {repr(e): float(acc.get_delta(e)) for e in epsilons}
    return {"deltas": out, "seconds": time.perf_counter() - t0}


def task_delta_prv(sigma, q, steps, epsilons):
    import prv_accountant
    t0 = time.perf_counter()
    prv = prv_accountant.PoissonSubsampledGaussianMechanism(
        sampling_probability=q, noise_multiplier=sigma)
    acc = prv_accountant.PRVAccountant(
        prvs=[prv], eps_error=PRV_EPS_ERROR,
        delta_error=PRV_DELTA_QUERY_DELTA_ERROR, max_self_compositions=[steps])
    out = {}
    for e in epsilons:
        lo, est, up = acc.compute_delta(e, [steps])
        out[repr(e)] = {"lower": float(lo), "estimate": float(est), "upper": float(up)}
    return {"deltas": out, "seconds": time.perf_counter() - t0}


def task_delta_opacus_prv(sigma, q, steps, epsilons):
    from opacus.accountants import PRVAccountant
    t0 = time.perf_counter()
    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    dprv = acc._get_dprv(eps_error=PRV_EPS_ERROR,
                         delta_error=PRV_DELTA_QUERY_DELTA_ERROR)
    out = {repr(e): {"estimate": float(dprv.compute_delta_estimate(e))}
           for e in epsilons}
    return {"deltas": out, "seconds": time.perf_counter() - t0}


TASKS = {
    "rdp_opacus": task_rdp_opacus,
    "rdp_dpacc": task_rdp_dpacc,
    "rdp_mpmath": task_rdp_mpmath,
    "mpmath_selfcheck": task_mpmath_selfcheck,
    "eps_opacus_rdp": task_eps_opacus_rdp,
    "eps_dpacc_rdp": task_eps_dpacc_rdp,
    "eps_prv": task_eps_prv,
    "eps_opacus_prv": task_eps_opacus_prv,
    "eps_dpacc_pld": task_eps_dpacc_pld,
    "eps_exact_gaussian": task_eps_exact_gaussian,
    "delta_dpacc_rdp": task_delta_dpacc_rdp,
    "delta_dpacc_pld": task_delta_dpacc_pld,
    "delta_prv": task_delta_prv,
    "delta_opacus_prv": task_delta_opacus_prv,
}

OPACUS_TASKS = {"rdp_opacus", "eps_opacus_rdp", "eps_opacus_prv", "delta_opacus_prv"}

# --------------------------------------------------------------------------
# Parent side: a tiny pool with per-call timeout and crash isolation
# --------------------------------------------------------------------------


class _Worker:
    def __init__(self, ctx, family):
        self.family = family
        parent, child = ctx.Pipe()
        self.conn = parent
        self.proc = ctx.Process(target=_worker_main,
                                args=(child, family, MEM_LIMIT_BYTES), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.task = None
        self.deadline = None
        self.info = None

    def kill(self):
        try:
            self.proc.kill()
        except Exception:
            pass
        self.proc.join(5)
        try:
            self.conn.close()
        except Exception:
            pass


def _death_message(exitcode):
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except Exception:
            name = str(-exitcode)
        if name in ("SIGKILL", "SIGABRT", "SIGSEGV", "SIGBUS"):
            return f"killed (memory): worker died with {name}"
        return f"killed: worker died with {name}"
    return f"killed: worker exited with code {exitcode}"


def run_tasks(tasks, n_workers=N_WORKERS, timeout=TIMEOUT_S, log=sys.stderr):
    """tasks: list of (key, name, kwargs[, timeout]). Returns {key: outcome}.

    outcome = {"ok": result, "seconds": s, "warnings": [...]} or {"error": msg, "seconds": s}
    """
    ctx = multiprocessing.get_context("spawn")
    pending = list(tasks)
    results = {}
    slots = [None] * n_workers
    total = len(pending)
    t_start = time.time()
    last_log = 0.0

    def family_of(name):
        return "opacus" if name in OPACUS_TASKS else "light"

    while pending or any(s is not None and s.task is not None for s in slots):
        # assign work to idle ready workers / start workers
        for i in range(n_workers):
            w = slots[i]
            if w is not None and w.task is not None:
                continue
            if not pending:
                continue
            # prefer a task of the worker's family to avoid re-imports
            fam = w.family if w is not None else None
            idx = 0
            if fam is not None:
                for j, t in enumerate(pending):
                    if family_of(t[1]) == fam:
                        idx = j
                        break
            task = pending[idx]
            tfam = family_of(task[1])
            if w is None or w.family != tfam:
                if w is not None:
                    try:
                        w.conn.send(None)
                    except Exception:
                        pass
                    w.kill()
                w = _Worker(ctx, tfam)
                slots[i] = w
            if not w.ready:
                # wait for import + rlimit (not counted against the task timeout)
                if w.conn.poll(300):
                    try:
                        msg = w.conn.recv()
                    except EOFError:
                        msg = ("dead", "worker died during import")
                    if msg[0] != "ready":
                        raise RuntimeError(f"worker failed to start: {msg}")
                    w.ready = True
                    w.info = msg[1]
                else:
                    raise RuntimeError("worker did not become ready")
            pending.pop(idx)
            key, name, kwargs = task[0], task[1], task[2]
            tmo = task[3] if len(task) > 3 else timeout
            w.task = (key, name)
            w.t0 = time.perf_counter()
            w.deadline = time.perf_counter() + tmo
            w.conn.send((name, kwargs))

        busy = [w for w in slots if w is not None and w.task is not None]
        if not busy:
            continue
        now = time.perf_counter()
        wait_for = max(0.01, min(w.deadline for w in busy) - now)
        ready = multiprocessing.connection.wait([w.conn for w in busy],
                                                timeout=min(wait_for, 5.0))
        now = time.perf_counter()
        for i, w in enumerate(slots):
            if w is None or w.task is None:
                continue
            key, name = w.task
            if w.conn in ready:
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    w.proc.join(5)
                    results[key] = {"error": _death_message(w.proc.exitcode),
                                    "seconds": now - w.t0}
                    w.kill()
                    slots[i] = None
                    continue
                if msg[0] == "ok":
                    results[key] = {"ok": msg[1], "seconds": msg[2], "warnings": msg[3]}
                    rss = msg[4]
                    w.task = None
                    if rss > RECYCLE_RSS_BYTES:
                        w.conn.send(None)
                        w.kill()
                        slots[i] = None
                else:
                    results[key] = {"error": msg[1], "seconds": msg[2]}
                    # replace a worker after any failure
                    w.task = None
                    try:
                        w.conn.send(None)
                    except Exception:
                        pass
                    w.kill()
                    slots[i] = None
            elif now > w.deadline:
                results[key] = {"error": "timeout", "seconds": now - w.t0}
                w.kill()
                slots[i] = None
        if time.time() - last_log > 30:
            last_log = time.time()
            print(f"  [{time.time() - t_start:7.1f}s] {len(results)}/{total} done",
                  file=log, flush=True)
    for w in slots:
        if w is not None:
            try:
                w.conn.send(None)
            except Exception:
                pass
            w.kill()
    return results


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _sanitize(x):
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, dict):
        return {k: _sanitize(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_sanitize(v) for v in x]
    return x


def _versions():
    v = {}
    for dist in ["dp-accounting", "prv-accountant", "opacus", "torch", "numpy",
                 "scipy", "mpmath"]:
        try:
            v[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            v[dist] = None
    v["python"] = platform.python_version()
    return v


def _header(out_dir, started):
    return {
        "generator": {
            "script": SCRIPT_PATH,
            "command": " ".join([sys.executable] + sys.argv),
            "intended_command": f"/work/peers-venv/bin/python {SCRIPT_PATH} {out_dir}",
            "started_utc": started,
        },
        "versions": _versions(),
        "isolation": {
            "mechanism": "multiprocessing spawn worker per call slot, 2 in parallel; "
                         "worker replaced after any error/timeout or RSS > 1.5 GiB",
            "timeout_s": TIMEOUT_S,
            "rlimit_as": "address space after imports + 8 GiB",
            "thread_env": THREAD_ENV,
        },
        "nonfinite_encoding": 'non-finite floats are the strings "inf", "-inf", "nan"',
    }


def _write(path, obj):
    obj = _sanitize(obj)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def _ok(outcome):
    return outcome is not None and "ok" in outcome


# --------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------


def build_rdp(out_dir, started):
    from opacus.accountants.rdp import RDPAccountant
    from dp_accounting.rdp.rdp_privacy_accountant import DEFAULT_RDP_ORDERS

    orders = RDP_INT_ORDERS + RDP_FRAC_ORDERS
    tasks = []
    for q in RDP_QS:
        for s in RDP_SIGMAS:
            for a in orders:
                kw = {"q": q, "sigma": s, "order": a}
                # mpmath first (the slowest light tasks), then peers
                tasks.append((("mp", q, s, a), "rdp_mpmath", kw))
                tasks.append((("dp", q, s, a), "rdp_dpacc", kw))
                tasks.append((("op", q, s, a), "rdp_opacus", kw))
    selfcheck = [(("sc", q, s, a), "mpmath_selfcheck", {"q": q, "sigma": s, "order": a})
                 for (q, s, a) in [(0.01, 1.0, 2), (0.5, 0.8, 5), (0.99, 0.5, 8),
                                   (0.001, 5.0, 3), (0.1, 2.0, 16)]]
    res = run_tasks(tasks + selfcheck)
    rows = []
    for q in RDP_QS:
        for s in RDP_SIGMAS:
            for a in orders:
                row = {"q": q, "sigma": s, "order": a}
                for tag, field in (("op", "opacus"), ("dp", "dp_accounting")):
                    o = res.get((tag, q, s, a))
                    if _ok(o):
                        row[field] = o["ok"]
                    else:
                        row[field] = None
                        row[field + "_error"] = o["error"] if o else "missing"
                    if o and o.get("warnings"):
                        row[field + "_warnings"] = o["warnings"]
                m = res.get(("mp", q, s, a))
                if _ok(m):
                    row["mpmath"] = m["ok"]["mpmath"]
                    row["mpmath_method"] = m["ok"]["mpmath_method"]
                    if "mpmath_rel_disagreement" in m["ok"]:
                        row["mpmath_rel_disagreement"] = m["ok"]["mpmath_rel_disagreement"]
                else:
                    row["mpmath"] = None
                    row["mpmath_error"] = m["error"] if m else "missing"
                rows.append(row)
    sc_rows = []
    for t in selfcheck:
        o = res.get(t[0])
        sc_rows.append(o["ok"] if _ok(o) else {**t[2], "error": o["error"] if o else "missing"})
    doc = _header(out_dir, started)
    doc.update({
        "description": (
            "Per-step (steps=1) RDP of the Poisson-subsampled Gaussian mechanism, "
            "add/remove-one relation. opacus = opacus.accountants.analysis.rdp."
            "compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=[order])[0]; "
            "dp_accounting = dp_accounting.rdp.rdp_privacy_accountant."
            "_compute_rdp_poisson_subsampled_gaussian(q, sigma, [order])[0] (at "
            "fractional orders it sums |binomial| terms without signs, an upper "
            "bound); mpmath = log(A_alpha)/(alpha-1) at mp.dps=60, A_alpha = "
            "E_{z~N(0,sigma^2)}[((1-q)+q exp((2z-1)/(2 sigma^2)))^alpha]: exact "
            "binomial sum at integer orders, quadrature at fractional orders "
            "(tanh-sinh with splits at 0, 1, z0, the integrand's modes m and "
            "m +- {1,2,4,8,16} sigma; cross-checked by Gauss-Legendre with splits "
            "m +- {1.5,3,6,12,24} sigma; mpmath_rel_disagreement = relative "
            "difference of the two RDP values). q, sigma and order enter mpmath as "
            "the exact binary64 values passed to the peers."),
        "mpmath_dps": MPMATH_DPS,
        "mpmath_agreement_target": MPMATH_AGREEMENT,
        "mpmath_quad_selfcheck_vs_binomial": sc_rows,
        "opacus_default_orders": list(RDPAccountant.DEFAULT_ALPHAS),
        "dp_accounting_default_orders": list(DEFAULT_RDP_ORDERS),
        "grid": {"q": RDP_QS, "sigma": RDP_SIGMAS, "integer_orders": RDP_INT_ORDERS,
                 "fractional_orders": RDP_FRAC_ORDERS},
        "rows": rows,
    })
    _write(os.path.join(out_dir, "rdp_orders.json"), doc)


def _est_cost(sigma, q, steps):
    return steps * q / sigma


def build_epsilon(out_dir, started):
    combos = [(s, q, t) for s in EPS_SIGMAS for q in EPS_QS for t in EPS_STEPS]
    combos_sorted = sorted(combos, key=lambda c: -_est_cost(*c))
    tasks = []
    for (s, q, t) in combos_sorted:
        tasks.append((("pld", s, q, t), "eps_dpacc_pld",
                      {"sigma": s, "q": q, "steps": t, "deltas": EPS_DELTAS,
                       "interval": PLD_INTERVAL}))
        for d in EPS_DELTAS:
            tasks.append((("prv", s, q, t, d), "eps_prv",
                          {"sigma": s, "q": q, "steps": t, "delta": d}))
    for (s, q, t) in combos_sorted:
        if q == 1.0:
            tasks.append((("pldg", s, q, t), "eps_dpacc_pld",
                          {"sigma": s, "q": q, "steps": t, "deltas": EPS_DELTAS,
                           "interval": PLD_INTERVAL, "gaussian_event": True}))
            tasks.append((("exact", s, q, t), "eps_exact_gaussian",
                          {"sigma": s, "steps": t, "deltas": EPS_DELTAS}))
        tasks.append((("dprdp", s, q, t), "eps_dpacc_rdp",
                       {"sigma": s, "q": q, "steps": t, "deltas": EPS_DELTAS}))
    # opacus family last (torch import once per worker)
    for (s, q, t) in combos_sorted:
        for d in EPS_DELTAS:
            tasks.append((("oprv", s, q, t, d), "eps_opacus_prv",
                          {"sigma": s, "q": q, "steps": t, "delta": d}))
        tasks.append((("ordp", s, q, t), "eps_opacus_rdp",
                      {"sigma": s, "q": q, "steps": t, "deltas": EPS_DELTAS}))
    res = run_tasks(tasks)

    def err(o):
        return {"error": o["error"] if o else "missing"}

    rows = []
    for (s, q, t) in combos:
        for d in EPS_DELTAS:
            dk = repr(d)
            row = {"sigma": s, "q": q, "steps": t, "delta": d}
            o = res.get(("ordp", s, q, t))
            row["opacus_rdp"] = o["ok"][dk] if _ok(o) else err(o)
            o = res.get(("dprdp", s, q, t))
            row["dp_accounting_rdp"] = o["ok"][dk] if _ok(o) else err(o)
            o = res.get(("prv", s, q, t, d))
            if _ok(o):
                r = dict(o["ok"])
                row["prv_accountant_seconds"] = r.pop("seconds")
                row["prv_accountant"] = r
            else:
                row["prv_accountant"] = err(o)
                row["prv_accountant_seconds"] = o["seconds"] if o else None
            o = res.get(("oprv", s, q, t, d))
            if _ok(o):
                r = dict(o["ok"])
                row["opacus_prv_seconds"] = r.pop("seconds")
                row["opacus_prv"] = r
            else:
                row["opacus_prv"] = err(o)
                row["opacus_prv_seconds"] = o["seconds"] if o else None
            o = res.get(("pld", s, q, t))
            if _ok(o):
                row["dp_accounting_pld"] = {"epsilon": o["ok"]["epsilons"][dk],
                                            "value_discretization_interval": PLD_INTERVAL}
                row["dp_accounting_pld_seconds"] = o["ok"]["seconds"]
            else:
                row["dp_accounting_pld"] = {**err(o),
                                            "value_discretization_interval": PLD_INTERVAL}
                row["dp_accounting_pld_seconds"] = o["seconds"] if o else None
            if q == 1.0:
                o = res.get(("pldg", s, q, t))
                if _ok(o):
                    row["dp_accounting_pld_gaussian_event"] = {
                        "epsilon": o["ok"]["epsilons"][dk],
                        "value_discretization_interval": PLD_INTERVAL,
                        "seconds": o["ok"]["seconds"]}
                else:
                    row["dp_accounting_pld_gaussian_event"] = err(o)
                o = res.get(("exact", s, q, t))
                row["exact_gaussian"] = ({"epsilon": o["ok"][dk]} if _ok(o) else err(o))
            rows.append(row)
    doc = _header(out_dir, started)
    doc.update({
        "description": (
            "epsilon for delta, Poisson-subsampled Gaussian, add/remove-one, T-fold "
            "self-composition. opacus_rdp: opacus compute_rdp + get_privacy_spent "
            "with RDPAccountant.DEFAULT_ALPHAS (order = optimal order; 'warning' if "
            "Opacus warned that the optimum is at an end of the order list). "
            "dp_accounting_rdp: RdpAccountant() (DEFAULT_RDP_ORDERS) composed with "
            "SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), "
            "T), get_epsilon_and_optimal_order(delta) (epsilon equals get_epsilon). "
            "q = 1.0 rows use the same PoissonSampledDpEvent(1.0, ...) for every "
            "dp_accounting accountant; for q = 1.0 the rows additionally carry "
            "dp_accounting_pld_gaussian_event (PLDAccountant with "
            "SelfComposedDpEvent(GaussianDpEvent(sigma), T), which dp_accounting "
            "composes analytically as one Gaussian with std sigma/sqrt(T)) and "
            "exact_gaussian (exact Gaussian-mechanism epsilon, mpmath at 50 digits, "
            "mu = sqrt(T)/sigma). opacus_prv: opacus PRVAccountant with history "
            "[(sigma, q, T)]; lower/estimate/upper from "
            "_get_dprv(eps_error=0.01, delta_error=delta/1000).compute_epsilon("
            "delta, delta/1000, 0.01); get_epsilon(delta, eps_error=0.01) returns "
            "exactly that upper value (opacus/accountants/prv.py:191-198). "
            "dp_accounting_pld: PLDAccountant(value_discretization_interval=1e-4), "
            "one composition per (sigma, q, T), get_epsilon(delta) for both deltas; "
            "dp_accounting_pld_seconds = wall time of compose + both queries. "
            "*_seconds of the PRV accountants = construction + one query. Timings "
            "were taken with 2 calls in parallel on a 2-core machine and single-"
            "threaded BLAS/OpenMP; use scripts/peers/bench_accounting_peers.py for "
            "benchmark numbers."),
        "prv_accountant_call": PRV_ACCOUNTANT_CALL,
        "opacus_prv_call": ("acc = opacus.accountants.PRVAccountant(); acc.history = "
                            "[(sigma, q, T)]; acc._get_dprv(eps_error=0.01, "
                            "delta_error=delta/1000).compute_epsilon(delta, "
                            "delta/1000, 0.01) -> (lower, estimate, upper)"),
        "grid": {"sigma": EPS_SIGMAS, "q": EPS_QS, "steps": EPS_STEPS, "delta": EPS_DELTAS},
        "rows": rows,
    })
    _write(os.path.join(out_dir, "epsilon_grid.json"), doc)


def build_delta(out_dir, started):
    combos = [(s, q, t) for s in DELTA_SIGMAS for q in DELTA_QS for t in DELTA_STEPS]
    tasks = []
    for (s, q, t) in combos:
        kw = {"sigma": s, "q": q, "steps": t, "epsilons": DELTA_EPSILONS}
        tasks.append((("pld", s, q, t), "delta_dpacc_pld", {**kw, "interval": PLD_INTERVAL}))
        tasks.append((("prv", s, q, t), "delta_prv", kw))
        tasks.append((("rdp", s, q, t), "delta_dpacc_rdp", kw))
    for (s, q, t) in combos:
        kw = {"sigma": s, "q": q, "steps": t, "epsilons": DELTA_EPSILONS}
        tasks.append((("oprv", s, q, t), "delta_opacus_prv", kw))
    res = run_tasks(tasks)

    def err(o):
        return {"error": o["error"] if o else "missing"}

    rows = []
    for (s, q, t) in combos:
        for e in DELTA_EPSILONS:
            ek = repr(e)
            row = {"sigma": s, "q": q, "steps": t, "epsilon": e}
            o = res.get(("rdp", s, q, t))
            row["dp_accounting_rdp"] = o["ok"][ek] if _ok(o) else err(o)
            o = res.get(("pld", s, q, t))
            if _ok(o):
                row["dp_accounting_pld"] = {"delta": o["ok"]["deltas"][ek],
                                            "value_discretization_interval": PLD_INTERVAL}
                row["dp_accounting_pld_seconds"] = o["ok"]["seconds"]
            else:
                row["dp_accounting_pld"] = err(o)
            o = res.get(("prv", s, q, t))
            if _ok(o):
                row["prv_accountant"] = {**o["ok"]["deltas"][ek],
                                         "eps_error": PRV_EPS_ERROR,
                                         "delta_error": PRV_DELTA_QUERY_DELTA_ERROR}
            else:
                row["prv_accountant"] = err(o)
            o = res.get(("oprv", s, q, t))
            if _ok(o):
                row["opacus_prv"] = {**o["ok"]["deltas"][ek],
                                     "eps_error": PRV_EPS_ERROR,
                                     "delta_error": PRV_DELTA_QUERY_DELTA_ERROR}
            else:
                row["opacus_prv"] = err(o)
            rows.append(row)
    doc = _header(out_dir, started)
    doc.update({
        "description": (
            "delta for epsilon, Poisson-subsampled Gaussian, add/remove-one. "
            "dp_accounting_rdp: RdpAccountant().compose(SelfComposedDpEvent("
            "PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), T))."
            "get_delta_and_optimal_order(eps) (delta equals get_delta). "
            "dp_accounting_pld: PLDAccountant(value_discretization_interval=1e-4), "
            "same event, get_delta(eps). prv_accountant: PRVAccountant(prvs="
            "[PoissonSubsampledGaussianMechanism(sampling_probability=q, "
            "noise_multiplier=sigma)], eps_error=0.01, delta_error=1e-12, "
            "max_self_compositions=[T]).compute_delta(eps, [T]) -> (lower, "
            "estimate, upper) where lower = estimate(eps+eps_error) - delta_error "
            "and upper = estimate(eps-eps_error) + delta_error "
            "(prv_accountant/accountant.py:118-122); the fixed delta_error=1e-12 "
            "sets the domain and mesh (the prv_accountant default convention "
            "delta/1000 needs a target delta, which a delta query does not have). "
            "opacus_prv: opacus PRVAccountant with history [(sigma, q, T)], "
            "_get_dprv(eps_error=0.01, delta_error=1e-12).compute_delta_estimate("
            "eps) (Opacus exposes no public delta query and no bounds). "
            "opacus_rdp: not available - Opacus 1.6.0's RDP analysis only has "
            "get_privacy_spent (epsilon for delta), no delta-for-epsilon function."),
        "grid": {"sigma": DELTA_SIGMAS, "q": DELTA_QS, "steps": DELTA_STEPS,
                 "epsilon": DELTA_EPSILONS},
        "rows": rows,
    })
    _write(os.path.join(out_dir, "delta_grid.json"), doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--only", choices=["rdp", "epsilon", "delta"], action="append",
                    help="build only these files (repeatable); default all")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    os.environ.update(THREAD_ENV)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    warnings.simplefilter("ignore")
    only = set(args.only or ["rdp", "epsilon", "delta"])
    t0 = time.time()
    if "rdp" in only:
        print("building rdp_orders.json", file=sys.stderr, flush=True)
        build_rdp(args.out_dir, started)
    if "delta" in only:
        print("building delta_grid.json", file=sys.stderr, flush=True)
        build_delta(args.out_dir, started)
    if "epsilon" in only:
        print("building epsilon_grid.json", file=sys.stderr, flush=True)
        build_epsilon(args.out_dir, started)
    print(f"total {time.time() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
