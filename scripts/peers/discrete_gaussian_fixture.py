#!/usr/bin/env python3
"""Reference values for the discrete Gaussian in the `dp-accounting` crate.

Usage (from the repository root, with the venv of shared/peers/setup-peers.sh):

    /tmp/peers-venv/bin/python scripts/peers/discrete_gaussian_fixture.py \
        crates/dp-accounting/tests/fixtures/discrete_gaussian.json

For sigma in {0.5, 1, 2, 5, 10} and several delta it records epsilon(delta) of

* the discrete Gaussian N_Z(0, sigma^2), sensitivity 1, alone:
  - "exact": the exact curve delta(eps) = sum_x max(0, P(x) - e^eps P(x-1)),
    P = N_Z(0, sigma^2), summed with mpmath (60 digits) over |x| <= 60 sigma + 60,
    inverted by bisection to 1e-12 (the value reported is the upper end);
  - "dp_accounting_pld": Google's dp_accounting PLD,
    from_discrete_gaussian_mechanism(sigma, sensitivity=1,
    value_discretization_interval=1e-4, use_connect_dots=True), pessimistic;
* the same composed with 100 steps of the Poisson-subsampled Gaussian
  (q = 0.05, noise multiplier 1.0): dp_accounting PLD of
  from_discrete_gaussian_mechanism(...).compose(
      from_gaussian_mechanism(1.0, sampling_prob=0.05).self_compose(100)).

Both directions (add and remove) are covered by dp_accounting's PLDs (the
discrete Gaussian's two directions coincide).
"""

import importlib.metadata
import json
import platform
import sys

import mpmath
from dp_accounting.pld import privacy_loss_distribution as pld

SIGMAS = [0.5, 1.0, 2.0, 5.0, 10.0]
DELTAS = [1e-3, 1e-5, 1e-8]
COMPOSED = {"sample_rate": 0.05, "noise_multiplier": 1.0, "steps": 100}
INTERVAL = 1e-4

mpmath.mp.dps = 60


def exact_delta(sigma, eps):
    s2 = mpmath.mpf(sigma) ** 2
    half = int(60 * sigma) + 60
    w = lambda x: mpmath.exp(-mpmath.mpf(x) ** 2 / (2 * s2))
    z = mpmath.fsum(w(x) for x in range(-half, half + 1))
    e = mpmath.exp(mpmath.mpf(eps))
    return mpmath.fsum(max(mpmath.mpf(0), w(x) - e * w(x - 1)) for x in range(-half, half + 2)) / z


def exact_epsilon(sigma, delta):
    if exact_delta(sigma, 0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while exact_delta(sigma, hi) > delta:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if exact_delta(sigma, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def versions():
    v = {}
    for dist in ["dp-accounting", "mpmath", "numpy", "scipy"]:
        try:
            v[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            v[dist] = None
    v["python"] = platform.python_version()
    return v


def main(out):
    rows = []
    for sigma in SIGMAS:
        dg = pld.from_discrete_gaussian_mechanism(
            sigma, sensitivity=1, value_discretization_interval=INTERVAL, use_connect_dots=True
        )
        steps = pld.from_gaussian_mechanism(
            COMPOSED["noise_multiplier"],
            sampling_prob=COMPOSED["sample_rate"],
            value_discretization_interval=INTERVAL,
        ).self_compose(COMPOSED["steps"])
        both = dg.compose(steps)
        for delta in DELTAS:
            rows.append(
                {
                    "sigma": sigma,
                    "delta": delta,
                    "exact": exact_epsilon(sigma, delta),
                    "dp_accounting_pld": dg.get_epsilon_for_delta(delta),
                    "composed_dp_accounting_pld": both.get_epsilon_for_delta(delta),
                }
            )
            print(rows[-1], file=sys.stderr)
    doc = {
        "generator": {
            "script": "scripts/peers/discrete_gaussian_fixture.py",
            "command": " ".join([sys.executable] + sys.argv),
        },
        "versions": versions(),
        "value_discretization_interval": INTERVAL,
        "composed_with": COMPOSED,
        "rows": rows,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
