"""Python mirrors of the TypeScript merge policies (src/policy), for the in-process reference run only.

Imported by ``reference`` and ``bench`` (the oracle and the bench-only ``train.step``), never by
the production sidecar's ops. ``test/fixtures/policy-pins.json`` pins both copies.

Same formulas, same float64 order of operations, so the two agree to float rounding:

- cos = dot / (‖a‖‖b‖ + 1e-12) with norms taken as square roots first, clamped to [-1, 1]; 0 when
  either squared norm is not positive (a zero-norm gradient is never aligned).
- λ_eff = λ (plain) or λ·‖g_IP‖/‖g_VR‖ (normalized; 0 when either norm is 0), from the global norms
  for ``global`` granularity and per block for ``layer``.

Policies (θ.grad_b = w_ip[b]·g_IP_b + w_vr[b]·g_VR_b):

- ``ip-only``: (1, 0).
- ``joint``: (1, λ_eff).
- ``gradprom``: (1, λ_eff) if cos > τ (strict) else (1, 0)  (arXiv 2501.01114).
- ``soft``: (1, max(0, cos)·λ_eff)  (arXiv 1812.02224).
- ``pcgrad``: with d = g_IP·g_VR < 0: (1 − λ_eff·d/‖g_IP‖², λ_eff − d/‖g_VR‖²), else (1, λ_eff)
  (arXiv 2001.06782).
- ``random-gate``: (1, λ_eff) if u(seed, step, unit) < p else (1, 0); p = ``open_rate``, u from
  :func:`uniform_at` (the same 32-bit hash as ``src/policy/coin.ts``, so the same draws).
- ``joint-scaled``: (1, (p·λ)_eff).
"""

from __future__ import annotations

import math
from typing import Callable

from gradprom_sidecar.training.config import at

COS_EPS = 1e-12
NAMES = ("ip-only", "joint", "gradprom", "soft", "pcgrad", "random-gate", "joint-scaled")
OPEN_RATE_NAMES = ("random-gate", "joint-scaled")

# (aa, bb, dot, cos, λ_eff, unit index) → (w_ip, w_vr, open)
Rule = Callable[[float, float, float, float, float, int], tuple[float, float, bool]]

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser."""
    h &= _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def uniform_at(seed: int, step: int, unit: int) -> float:
    """u ∈ [0, 1) of one random-gate decision, bit for bit ``uniformAt`` of ``src/policy/coin.ts``.

    :param seed: the run's seed (0 … 2⁵³ − 1).
    :param step: steps already taken (0 … 2³² − 1).
    :param unit: 0 for a global decision, the block's index per layer.
    """
    for what, v, top in (("seed", seed, 2**53 - 1), ("step", step, _M32), ("unit", unit, _M32)):
        if not (isinstance(v, int) and 0 <= v <= top):
            raise ValueError(f"{what}: expected an integer in [0, {top}], got {v!r}")
    h = _GOLDEN
    for w in (seed & _M32, (seed >> 32) & _M32, step, unit):
        h = fmix32(((h ^ w) + _GOLDEN) & _M32)
    return h / 2**32


def cosine(dot: float, aa: float, bb: float) -> float:
    """cos = dot / (‖a‖‖b‖ + eps), clamped to [-1, 1]; 0 when either squared norm is not positive.

    :param dot: a·b.
    :param aa: ‖a‖².
    :param bb: ‖b‖².
    """
    if not aa > 0 or not bb > 0:
        return 0.0
    na, nb = math.sqrt(aa), math.sqrt(bb)
    den = na * nb
    c = dot / (den + COS_EPS) if math.isfinite(den) else dot / na / nb
    return max(-1.0, min(1.0, c))


def effective_lambda(lam: float, mode: str, aa: float, bb: float) -> float:
    """λ (plain) or λ·‖g_IP‖/‖g_VR‖ (normalized; 0 when either norm is 0).

    :param lam: the configured λ.
    :param mode: ``plain`` or ``normalized``.
    :param aa: ‖g_IP‖².
    :param bb: ‖g_VR‖².
    """
    if mode == "plain":
        return lam
    if mode != "normalized":
        raise ValueError(f"config.policy.lambda_mode: expected plain or normalized, got {mode!r}")
    if not bb > 0 or not aa > 0:
        return 0.0
    return lam * (math.sqrt(aa) / math.sqrt(bb))


def _rule(name: str, tau: float, rate: float | None, context: dict | None) -> Rule:
    """The per-unit rule of policy ``name``."""
    if name == "ip-only":
        return lambda aa, bb, dot, cos, lam, unit: (1.0, 0.0, False)
    if name in ("joint", "joint-scaled"):  # joint-scaled: λ already scaled by p
        return lambda aa, bb, dot, cos, lam, unit: (1.0, lam, True)
    if name == "random-gate":
        if context is None:
            raise ValueError("random-gate: needs the step context {seed, step}")
        seed, step = int(context["seed"]), int(context["step"])

        def draw(aa: float, bb: float, dot: float, cos: float, lam: float, unit: int) -> tuple[float, float, bool]:
            return (1.0, lam, True) if uniform_at(seed, step, unit) < rate else (1.0, 0.0, False)  # type: ignore[operator]

        return draw
    if name == "gradprom":

        def gate(aa: float, bb: float, dot: float, cos: float, lam: float, unit: int) -> tuple[float, float, bool]:
            open_ = aa > 0 and bb > 0 and cos > tau
            return (1.0, lam, True) if open_ else (1.0, 0.0, False)

        return gate
    if name == "soft":
        return lambda aa, bb, dot, cos, lam, unit: (1.0, cos * lam, True) if cos > 0 else (1.0, 0.0, False)
    if name == "pcgrad":

        def project(aa: float, bb: float, dot: float, cos: float, lam: float, unit: int) -> tuple[float, float, bool]:
            if not (aa > 0 and bb > 0 and dot < 0):
                return 1.0, lam, True
            return 1.0 - lam * (dot / aa), lam - dot / bb, False

        return project
    raise ValueError(f"config.policy.name: expected one of {', '.join(NAMES)}, got {name!r}")


def open_rate(policy_cfg: dict) -> float | None:
    """p of random-gate and joint-scaled (a number in [0, 1], required there); None for the others."""
    name = at(policy_cfg, "name", "policy")
    if name not in OPEN_RATE_NAMES:
        return None
    p = policy_cfg.get("open_rate")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"config.policy.open_rate: policy {name!r} needs a number in [0, 1], got {p!r}")
    return float(p)


def weights(policy_cfg: dict, gram: dict, context: dict | None = None) -> tuple[list[float], list[float], dict]:
    """The per-block weights of one step, and its telemetry.

    :param policy_cfg: the config's ``policy`` section (name, lambda, lambda_mode, threshold, granularity; all
        required; open_rate for random-gate and joint-scaled).
    :param gram: ``{ip_ip, vr_vr, ip_vr}`` per-block lists.
    :param context: ``{seed, step}``: the run's seed and the steps already taken (random-gate draws from them).
    :returns: (w_ip, w_vr, telemetry) with telemetry keys cos, gate (None for layer granularity),
        gate_rate, ip_norm, vr_norm, lambda_eff.
    """
    name = at(policy_cfg, "name", "policy")
    lam = float(at(policy_cfg, "lambda", "policy"))
    mode = at(policy_cfg, "lambda_mode", "policy")
    granularity = at(policy_cfg, "granularity", "policy")
    rate = open_rate(policy_cfg)
    if name == "joint-scaled":
        lam = rate * lam  # type: ignore[operator]
    rule = _rule(name, float(at(policy_cfg, "threshold", "policy")), rate, context)
    aa_b, bb_b, ab_b = gram["ip_ip"], gram["vr_vr"], gram["ip_vr"]
    n = len(aa_b)
    aa = bb = ab = 0.0
    for b in range(n):  # summed in block order, as gramTotals does
        aa += aa_b[b]
        bb += bb_b[b]
        ab += ab_b[b]
    cos = cosine(ab, aa, bb)
    if name == "ip-only":
        telemetry = {"cos": cos, "gate": False, "gate_rate": 0.0, "ip_norm": math.sqrt(aa), "vr_norm": math.sqrt(bb), "lambda_eff": 0.0}
        return [1.0] * n, [0.0] * n, telemetry
    lam_eff = effective_lambda(lam, mode, aa, bb)
    if granularity == "global":
        wi, wv, open_ = rule(aa, bb, ab, cos, lam_eff, 0)
        w_ip, w_vr = [wi] * n, [wv] * n
        gate: bool | None = open_
        gate_rate = 1.0 if open_ else 0.0
    elif granularity == "layer":
        w_ip, w_vr, opens = [], [], 0
        for b in range(n):
            a, v, d = aa_b[b], bb_b[b], ab_b[b]
            wi, wv, open_ = rule(a, v, d, cosine(d, a, v), effective_lambda(lam, mode, a, v), b)
            w_ip.append(wi)
            w_vr.append(wv)
            opens += int(open_)
        gate = None
        gate_rate = opens / n if n else 0.0
    else:
        raise ValueError(f"config.policy.granularity: expected global or layer, got {granularity!r}")
    telemetry = {
        "cos": cos,
        "gate": gate,
        "gate_rate": gate_rate,
        "ip_norm": math.sqrt(aa),
        "vr_norm": math.sqrt(bb),
        "lambda_eff": lam_eff,
    }
    return w_ip, w_vr, telemetry
