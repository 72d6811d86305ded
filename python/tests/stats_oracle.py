"""Expected values for the comparison statistics (src/report), computed with scipy: the test oracle.

``python python/tests/stats_oracle.py`` (then ``npx prettier --write`` on it) rewrites ``test/fixtures/stats-oracle.json``; jest checks the
TypeScript statistics against that file, and ``test_stats_oracle.py`` checks the file is what scipy
gives today. Inputs are fixed numbers with four decimals, so JSON carries them exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

FIXTURE = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "stats-oracle.json"

ALPHA = 0.05
POWER = 0.8


def _pairs() -> list[dict[str, list[float]]]:
    """Paired samples of 2..12 seeds: a − b with and without an effect, with ties and a sign-symmetric case."""
    rng = np.random.default_rng(20250103)
    out = []
    for n in [2, 3, 4, 5, 6, 7, 8, 10, 12]:
        for shift in (0.0, 0.4):
            b = np.round(rng.normal(30.0, 1.0, n), 4)
            a = np.round(b + rng.normal(shift, 0.5, n), 4)
            out.append({"a": a.tolist(), "b": b.tolist()})
    out.append({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [0.5, 2.5, 2.5, 4.5, 4.5]})  # |differences| all tied
    out.append({"a": [0.61, 0.59, 0.665, 0.602, 0.65], "b": [0.6, 0.57, 0.65, 0.59, 0.62]})  # every seed a > b
    return out


def _signflip_p(a: np.ndarray, b: np.ndarray) -> float:
    def statistic(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    res = stats.permutation_test(
        (a, b), statistic, permutation_type="samples", vectorized=True, n_resamples=np.inf, alternative="two-sided"
    )
    return float(res.pvalue)


def _holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out as in Holm (1979)."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * ps[i]))
        out[i] = running
    return out


def _power(d: float, n: int) -> float:
    df = n - 1
    crit = stats.t.ppf(1 - ALPHA / 2, df)
    ncp = d * np.sqrt(n)
    # P(T'(ncp) < -crit) = P(T'(-ncp) > crit): scipy's far lower tail can come back NaN, its upper tail does not.
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.sf(crit, df, -ncp))


def _detectable(n: int) -> float:
    return float(optimize.brentq(lambda d: _power(d, n) - POWER, 1e-6, 8.0, xtol=1e-12))


def _seeds_needed(d: float) -> int:
    n = 2
    while _power(d, n) < POWER:
        n += 1
    return n


def oracle() -> dict[str, Any]:
    """Every expected value, by kind."""
    quantiles = [{"p": p, "df": df, "q": float(stats.t.ppf(p, df))} for df in range(1, 31) for p in (0.8, 0.9, 0.975, 0.995)]
    paired = []
    for pair in _pairs():
        a, b = np.array(pair["a"]), np.array(pair["b"])
        t = stats.ttest_rel(a, b)
        paired.append({**pair, "t": float(t.statistic), "p_t": float(t.pvalue), "p_signflip": _signflip_p(a, b)})
    holm_inputs = [
        [0.01, 0.04, 0.03, 0.005],
        [0.2, 0.01, 0.01, 0.5, 0.049, 0.0001],
        [0.0625, 0.0625, 0.125, 0.3125, 1.0],
        [0.9],
    ]
    holm = [{"p": ps, "adjusted": _holm(ps)} for ps in holm_inputs]
    normal = [{"x": x, "cdf": float(stats.norm.cdf(x))} for x in (-6.0, -3.5, -2.0, -0.3, 0.0, 1.0, 2.9, 3.1, 5.0)]
    nct = [
        {"t": t, "df": df, "ncp": ncp, "cdf": float(stats.nct.cdf(t, df, ncp))}
        for (t, df, ncp) in [(2.0, 1, 0.5), (-1.0, 3, 1.2), (2.776, 4, 3.0), (1.5, 9, 2.5), (-2.0, 29, -1.0), (2.0, 60, 2.2)]
    ]
    power = [{"d": d, "n": n, "power": _power(d, n)} for (d, n) in [(0.5, 5), (1.0, 5), (1.5, 8), (0.8, 12), (2.0, 3), (0.3, 30)]]
    detectable = [{"n": n, "d": _detectable(n)} for n in range(3, 31)]
    needed = [{"d": d, "n": _seeds_needed(d)} for d in (0.3, 0.5, 0.8, 1.0, 1.5, 2.5)]
    return {
        "generator": "python/tests/stats_oracle.py",
        "alpha": ALPHA,
        "power": POWER,
        "t_quantiles": quantiles,
        "paired": paired,
        "holm": holm,
        "normal_cdf": normal,
        "noncentral_t_cdf": nct,
        "paired_t_power": power,
        "detectable_effect": detectable,
        "seeds_needed": needed,
    }


def text() -> str:
    """The fixture file's text."""
    return json.dumps(oracle(), indent=1) + "\n"


if __name__ == "__main__":
    FIXTURE.write_text(text(), encoding="utf-8")
    sys.stdout.write(f"wrote {FIXTURE}\n")
