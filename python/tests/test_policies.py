"""The Python policy mirrors (gradprom_sidecar.tools.policies): the shared pinned fixture, then hand-worked cases.

``test/fixtures/policy-pins.json`` is read by this file and by the TypeScript suite alike, so the
two copies of the policy math cannot drift apart while both suites pass.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from gradprom_sidecar.tools import policies as P

ROOT = Path(__file__).resolve().parents[2]
PINS = json.loads((ROOT / "test" / "fixtures" / "policy-pins.json").read_text(encoding="utf-8"))
TELEMETRY = ("cos", "gate", "gate_rate", "ip_norm", "vr_norm", "lambda_eff")


def _close(got: object, want: object) -> bool:
    """Equal at the fixture's stated tolerance (numbers), or exactly (booleans, null)."""
    if isinstance(want, bool) or want is None or isinstance(got, bool) or got is None:
        return got is want
    tol = PINS["tolerance"]
    return math.isclose(float(got), float(want), rel_tol=tol["rel"], abs_tol=tol["abs"])  # type: ignore[arg-type]


def _pins() -> list[tuple[str, dict, dict]]:
    out = []
    for case in PINS["cases"]:
        for r in case["results"]:
            p = r["policy"]
            out.append((f"{case['label']} | {p['name']} {p['granularity']} {p['lambda_mode']}", case, r))
    return out


def test_the_fixture_covers_every_policy_granularity_and_lambda_mode() -> None:
    want = {(n, g, m) for n in P.NAMES for g in ("global", "layer") for m in ("plain", "normalized")}
    assert len(PINS["cases"]) >= 8
    for case in PINS["cases"]:
        got = {(r["policy"]["name"], r["policy"]["granularity"], r["policy"]["lambda_mode"]) for r in case["results"]}
        assert got == want, case["label"]
    labels = " ".join(c["label"] for c in PINS["cases"])
    assert "zero" in labels and "huge" in labels and "tiny" in labels
    gates = [r["telemetry"]["gate"] for c in PINS["cases"] for r in c["results"] if r["policy"]["name"] == "random-gate"]
    assert True in gates and False in gates  # the contexts pin both an open and a closed draw


def test_the_committed_fixture_is_what_the_oracle_gives_now() -> None:
    spec = importlib.util.spec_from_file_location("gen_pins", ROOT / "scripts" / "gen-pins.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.build() == PINS, "test/fixtures/policy-pins.json is stale: run `npm run gen:pins` and commit it"


@pytest.mark.parametrize(("label", "case", "pinned"), _pins(), ids=[p[0] for p in _pins()])
def test_weights_match_the_shared_pins(label: str, case: dict, pinned: dict) -> None:
    w_ip, w_vr, tel = P.weights(pinned["policy"], case["gram"], case["context"])
    assert len(w_ip) == len(w_vr) == len(case["blocks"])
    for got, want, what in ((w_ip, pinned["w_ip"], "w_ip"), (w_vr, pinned["w_vr"], "w_vr")):
        assert all(_close(g, w) for g, w in zip(got, want)), f"{label}: {what} {got} != {want}"
    for k in TELEMETRY:
        assert _close(tel[k], pinned["telemetry"][k]), f"{label}: {k} {tel[k]!r} != {pinned['telemetry'][k]!r}"
    assert all(math.isfinite(x) for x in w_ip + w_vr), label


def _gram(aa: list[float], bb: list[float], ab: list[float]) -> dict:
    return {"ip_ip": aa, "vr_vr": bb, "ip_vr": ab}


def _policy(name: str, **kw: object) -> dict:
    rate = 0.5 if name in P.OPEN_RATE_NAMES else None
    return {"name": name, "lambda": 0.5, "lambda_mode": "plain", "threshold": 0.0, "granularity": "global", "open_rate": rate, **kw}


# Two blocks: block 0 agrees (dot > 0), block 1 conflicts; globally they agree (dot total 1.0).
GRAM = _gram([4.0, 1.0], [1.0, 4.0], [2.0, -1.0])


def test_policy_weights_pinned_global() -> None:
    cos = 1.0 / (math.sqrt(5.0) * math.sqrt(5.0) + 1e-12)
    w_ip, w_vr, t = P.weights(_policy("gradprom"), GRAM)
    assert (w_ip, w_vr, t["gate"], t["gate_rate"]) == ([1.0, 1.0], [0.5, 0.5], True, 1.0)
    assert t["cos"] == pytest.approx(cos, rel=1e-12) and t["ip_norm"] == pytest.approx(math.sqrt(5))
    assert P.weights(_policy("gradprom", threshold=0.3), GRAM)[1] == [0.0, 0.0]  # strict: cos 0.2 is not > 0.3
    assert P.weights(_policy("ip-only"), GRAM)[:2] == ([1.0, 1.0], [0.0, 0.0])
    assert P.weights(_policy("joint"), GRAM)[1] == [0.5, 0.5]
    assert P.weights(_policy("soft"), GRAM)[1] == pytest.approx([0.5 * cos] * 2)
    w_ip, w_vr, t = P.weights(_policy("gradprom", lambda_mode="normalized"), GRAM)
    assert t["lambda_eff"] == pytest.approx(0.5) and w_vr == pytest.approx([0.5, 0.5])  # ‖g_IP‖ = ‖g_VR‖


def test_policy_weights_layer_and_pcgrad() -> None:
    w_ip, w_vr, t = P.weights(_policy("gradprom", granularity="layer"), GRAM)
    assert w_vr == [0.5, 0.0] and t["gate"] is None and t["gate_rate"] == 0.5
    w_ip, w_vr, _ = P.weights(_policy("gradprom", granularity="layer", lambda_mode="normalized"), GRAM)
    assert w_vr == pytest.approx([0.5 * 2.0, 0.0])  # per block λ·‖g_IP_b‖/‖g_VR_b‖
    # pcgrad per layer on block 1 equals projecting the two vectors explicitly.
    a, v = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, math.sqrt(3.0)], dtype=torch.float64)
    g = _gram([float(a @ a)], [float(v @ v)], [float(a @ v)])
    w_ip, w_vr, t = P.weights(_policy("pcgrad", granularity="layer"), g)
    d = a @ v
    expected = (a - d / (v @ v) * v) + 0.5 * (v - d / (a @ a) * a)
    torch.testing.assert_close(w_ip[0] * a + w_vr[0] * v, expected)
    assert t["gate_rate"] == 0.0


def test_policy_zero_norms_never_open_the_gate() -> None:
    g = _gram([0.0, 1.0], [1.0, 0.0], [0.0, 0.0])
    for name in P.NAMES:
        w_ip, w_vr, t = P.weights(_policy(name, threshold=-1.0, granularity="layer", lambda_mode="normalized"), g, {"seed": 0, "step": 0})
        assert all(math.isfinite(x) for x in w_ip + w_vr) and w_vr == [0.0, 0.0], name
    assert P.cosine(1.0, 0.0, 1.0) == 0.0 and P.effective_lambda(0.1, "normalized", 1.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="config.policy.name"):
        P.weights(_policy("magic"), g)


def test_the_draw_is_the_typescript_one() -> None:
    # The same three values as test/policy/controls.test.ts.
    assert [P.uniform_at(0, 0, 0), P.uniform_at(0, 1, 0), P.uniform_at(2**32 + 5, 4, 1)] == [
        0.4888014190364629,
        0.12302647973410785,
        0.7146766202058643,
    ]
    with pytest.raises(ValueError, match="step: expected an integer"):
        P.uniform_at(0, -1, 0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_random_gate_opens_at_rate_p_and_closed_gives_g_ip(p: float) -> None:
    n, opens = 20000, 0
    cfg = _policy("random-gate", open_rate=p)
    for step in range(n):
        w_ip, w_vr, t = P.weights(cfg, GRAM, {"seed": 11, "step": step})
        opens += int(t["gate"])
        assert (w_ip, w_vr) == (([1.0, 1.0], [0.5, 0.5]) if t["gate"] else ([1.0, 1.0], [0.0, 0.0]))
    # Deterministic draws: a fixed rate, inside 5 binomial standard deviations of p.
    assert abs(opens / n - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_random_gate_is_keyed_on_seed_and_step_and_needs_them() -> None:
    cfg = _policy("random-gate", granularity="layer")
    first = [P.weights(cfg, GRAM, {"seed": 5, "step": s})[1] for s in range(50)]
    assert [P.weights(cfg, GRAM, {"seed": 5, "step": s})[1] for s in range(30, 50)] == first[30:]
    assert [P.weights(cfg, GRAM, {"seed": 6, "step": s})[1] for s in range(50)] != first
    with pytest.raises(ValueError, match="needs the step context"):
        P.weights(cfg, GRAM)


def test_joint_scaled_is_joint_with_lambda_times_p_and_open_rate_is_required() -> None:
    for mode in ("plain", "normalized"):
        for granularity in ("global", "layer"):
            scaled = P.weights(_policy("joint-scaled", open_rate=0.25, lambda_mode=mode, granularity=granularity), GRAM)
            joint = P.weights(_policy("joint", **{"lambda": 0.125, "lambda_mode": mode, "granularity": granularity}), GRAM)
            assert scaled == joint
    for name in P.OPEN_RATE_NAMES:
        with pytest.raises(ValueError, match=f"config.policy.open_rate: policy '{name}' needs a number"):
            P.weights(_policy(name, open_rate=None), GRAM, {"seed": 0, "step": 0})
