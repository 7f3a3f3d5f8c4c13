#!/usr/bin/env python3
"""Samples per second of the exact discrete Gaussian in Python: the peer of
`crates/dp-optim/benches/discrete_gaussian.rs`.

The sampler is a minimal transcription of Thomas Steinke's reference implementation of
Canonne, Kamath & Steinke 2020 (`discretegauss.py` in
https://github.com/IBM/discrete-gaussian-differential-privacy, Apache-2.0; not on
PyPI): Bernoulli(exp(-gamma)) for Fraction gamma, the discrete Laplace, and rejection to
the discrete Gaussian, with random.SystemRandom as the source of uniform integers, as
the reference does.

Usage: python3 scripts/peers/bench_discrete_gaussian_peer.py  (prints JSON)
"""

import json
import math
import platform
import random
import time
from fractions import Fraction

rng = random.SystemRandom()


def sample_uniform(m):
    return rng.randrange(m)


def sample_bernoulli(p):
    return 1 if sample_uniform(p.denominator) < p.numerator else 0


def sample_bernoulli_exp1(x):
    k = 1
    while True:
        if sample_bernoulli(x / k) == 1:
            k += 1
        else:
            break
    return k % 2


def sample_bernoulli_exp(x):
    while x > 1:
        if sample_bernoulli_exp1(Fraction(1, 1)) == 1:
            x = x - 1
        else:
            return 0
    return sample_bernoulli_exp1(x)


def sample_geometric_exp_slow(x):
    k = 0
    while True:
        if sample_bernoulli_exp(x) == 1:
            k += 1
        else:
            return k


def sample_geometric_exp_fast(x):
    if x == 0:
        return 0
    t = x.denominator
    while True:
        u = sample_uniform(t)
        if sample_bernoulli_exp(Fraction(u, t)) == 1:
            break
    v = sample_geometric_exp_slow(Fraction(1))
    value = v * t + u
    return value // x.numerator


def sample_dlaplace(scale):
    while True:
        sign = sample_bernoulli(Fraction(1, 2))
        magnitude = sample_geometric_exp_fast(1 / Fraction(scale))
        if sign == 1 and magnitude == 0:
            continue
        return magnitude * (1 - 2 * sign)


def sample_dgauss(sigma2):
    t = math.floor(math.sqrt(sigma2)) + 1
    while True:
        candidate = sample_dlaplace(t)
        bias = ((abs(candidate) - sigma2 / t) ** 2) / (2 * sigma2)
        if sample_bernoulli_exp(bias) == 1:
            return candidate


def main():
    out = {"python": platform.python_version(), "draws_per_sigma": {}, "samples_per_s": {}}
    for sigma in [1.0, 10.0, 1000.0]:
        sigma2 = Fraction(sigma) ** 2
        n = 20000
        start = time.perf_counter()
        for _ in range(n):
            sample_dgauss(sigma2)
        elapsed = time.perf_counter() - start
        out["draws_per_sigma"][str(sigma)] = n
        out["samples_per_s"][str(sigma)] = n / elapsed
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
