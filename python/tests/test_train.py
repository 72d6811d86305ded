"""The training-step ops (gradprom_sidecar.ops.train): ``train.advance``, one round trip and one host sync per step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import call, make, new_state, params, tiny_config

from gradprom_sidecar.training import grads as G
from gradprom_sidecar.training import session as S
from gradprom_sidecar.training import step as step_module
from gradprom_sidecar.training.snapshot import pack
from gradprom_sidecar.wire.registry import HANDLERS, Context, State


def advance(state: State, decision: dict | None, nxt: bool = True, tensors: list | None = None, transport: str = "gram") -> tuple:
    """``train.advance`` as the server runs it: the handler, then (the reply sent) its deferred work."""
    ctx = Context(state, request_id=1)
    args = {"next": nxt, "transport": transport, **({"decision": decision} if decision is not None else {})}
    result, out = HANDLERS["train.advance"](ctx, args, tensors or [])
    ctx.run_deferred()
    return result, out


def weights(n: int, lam: float = 0.003) -> dict:
    return {"kind": "weights", "ip": [1.0] * n, "vr": [lam * (1 + i % 2) for i in range(n)]}


def test_advance_steps_exactly_as_grads_then_apply() -> None:
    """The pipelined op (apply t, grads t+1, VR's update and t+2's inputs after the reply) changes no number."""
    (state_a, a), (state_b, b) = make(), make()
    n = len(a.layout)
    w = weights(n)
    res, _ = advance(state_b, None)
    for t in range(4):
        g, _ = call(state_a, "train.grads", {"transport": "gram"})
        assert res["next"] == {k: g[k] for k in ("loss_ip", "loss_vr", "finite", "gram")} and res["step"] == t
        applied, _ = call(state_a, "train.apply", {"weights": {"ip": w["ip"], "vr": w["vr"]}})
        res, _ = advance(state_b, w, nxt=t < 3)
        # ip_descent_actual came back with step t+1's numbers here, at once in train.apply: the same value.
        assert {k: res[k] for k in ("step", "lr_ip", "lr_vr", "ip_descent_actual")} == applied and res["skipped"] == 0
    assert res["next"] is None and b.pipeline.pending is None
    for x, y in zip(params(a.ip) + params(a.vr), params(b.ip) + params(b.vr)):
        assert torch.equal(x, y)
    assert a.vr_optim.state_dict()["state"][0]["step"] == b.vr_optim.state_dict()["state"][0]["step"] == 4


def test_advance_in_vectors_transport_returns_the_vectors_and_takes_a_merged_update() -> None:
    (state_a, a), (state_b, b) = make(), make()
    n = len(a.layout)
    w = weights(n)
    res, vecs = advance(state_b, None, transport="vectors")
    for t in range(3):
        _, (g_ip, g_vr) = call(state_a, "train.grads", {"transport": "vectors"})
        assert torch.equal(vecs[0], g_ip) and torch.equal(vecs[1], g_vr) and vecs[0].device.type == "cpu"
        call(state_a, "train.apply", {"weights": {"ip": w["ip"], "vr": w["vr"]}})
        merged = G.merge_weights(vecs[0], vecs[1], b.layout, w["ip"], w["vr"])
        res, vecs = advance(state_b, {"kind": "merged"}, nxt=t < 2, tensors=[merged], transport="vectors")
    assert vecs == []
    for x, y in zip(params(a.ip) + params(a.vr), params(b.ip) + params(b.vr)):
        assert torch.equal(x, y)


def test_one_host_transfer_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Losses, Gram and finiteness (and the vectors, and the last IP step's descent) come back through ONE to_host call per step."""
    state, s = make()
    calls: list[int] = []
    real = step_module.to_host
    monkeypatch.setattr(step_module, "to_host", lambda ts, into=(): (calls.append(len(ts)), real(ts, into))[1])
    advance(state, None)
    for _ in range(3):
        advance(state, weights(len(s.layout)))
    assert calls == [1, 2, 2, 2]  # from the second step on: stats and the step before's descent, one transfer
    advance(state, weights(len(s.layout)), nxt=False)  # nothing follows: its descent is read at once
    advance(state, None, transport="vectors")
    assert calls == [1, 2, 2, 2, 3]  # stats, g_ip, g_vr: still one transfer


def _nan_next_step(monkeypatch: pytest.MonkeyPatch, s: S.Session) -> None:
    """Make the next gradients NaN (as a diverging step would), once."""
    real = G.step_stats

    def nan_stats(losses: torch.Tensor, g_ip: torch.Tensor, g_vr: torch.Tensor, layout: G.Layout) -> torch.Tensor:
        g_ip.fill_(math.nan)
        monkeypatch.setattr(G, "step_stats", real)
        return real(losses, g_ip, g_vr, layout)

    monkeypatch.setattr(G, "step_stats", nan_stats)


def test_a_non_finite_step_is_skipped_with_nothing_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    state, s = make()
    n = len(s.layout)
    advance(state, None)
    res, _ = advance(state, weights(n))
    assert res["step"] == 1
    _nan_next_step(monkeypatch, s)
    before = params(s.ip) + params(s.vr)
    vr_steps = float(s.vr_optim.state_dict()["state"][0]["step"])  # steps 1 and 2: made after their replies
    res, _ = advance(state, weights(n))  # applies step 2, computes step 3: NaN
    assert res["next"]["finite"] is False and not s.pipeline.pending.vr_stepped
    after_step2 = params(s.ip) + params(s.vr)
    assert any(not torch.equal(x, y) for x, y in zip(before, after_step2))
    res, _ = advance(state, {"kind": "skip"}, nxt=False)
    assert res["skipped"] == 1 and res["step"] == 2 and res["next"] is None
    assert all(torch.equal(x, y) for x, y in zip(after_step2, params(s.ip) + params(s.vr)))  # VR untouched too
    assert float(s.vr_optim.state_dict()["state"][0]["step"]) == vr_steps == 2  # none for the NaN step


def test_a_checkpoint_at_a_boundary_resumes_bit_identically_although_inputs_were_drawn_ahead(tmp_path: Path) -> None:
    state, s = make()
    n = len(s.layout)
    advance(state, None)
    advance(state, weights(n))
    advance(state, weights(n), nxt=False)  # step 2 applied; a boundary: no gradients pending
    assert s.pipeline.pending is None and s.prefetched is not None  # step 3's inputs were drawn after the last reply
    path = tmp_path / "ckpt.pt"
    call(state, "checkpoint.save", {"path": str(path), "extra": {}})
    advance(state, None)
    for _ in range(2):
        advance(state, weights(n))
    advance(state, weights(n), nxt=False)
    resumed = new_state()
    call(resumed, "checkpoint.load", {"path": str(path)})  # a new session, built from the checkpoint's config
    r = resumed.session
    assert r.step == 2 and r.prefetched is None
    advance(resumed, None)
    for _ in range(2):
        advance(resumed, weights(n))
    advance(resumed, weights(n), nxt=False)
    assert r.step == s.step == 5
    for x, y in zip(params(s.ip) + params(s.vr), params(r.ip) + params(r.vr)):
        assert torch.equal(x, y)


def test_a_half_applied_step_is_never_checkpointed_nor_dropped(tmp_path: Path) -> None:
    state, s = make()
    advance(state, None)  # step 1 pending, VR already updated
    with pytest.raises(RuntimeError, match="step 1 is half-applied"):
        pack(s)
    with pytest.raises(RuntimeError, match="half-applied"):
        call(state, "train.grads", {"transport": "gram"})
    with pytest.raises(RuntimeError, match="train.advance: step 1 is pending"):
        advance(state, None)


def test_advance_errors_name_the_argument() -> None:
    state, s = make()
    with pytest.raises(RuntimeError, match="train.advance: no pending gradients"):
        advance(state, weights(len(s.layout)))
    with pytest.raises(ValueError, match="args.decision.kind"):
        advance(state, {"kind": "maybe"})
    with pytest.raises(ValueError, match="args.next"):
        call(state, "train.advance", {"next": "yes"})
    advance(state, None)
    with pytest.raises(ValueError, match=r"args.decision.vr: expected \d+ blocks, got 1"):
        advance(state, {"kind": "weights", "ip": [1.0] * len(s.layout), "vr": [0.0]})
    with pytest.raises(ValueError, match="tensors come only with a merged decision"):
        advance(state, weights(len(s.layout)), tensors=[torch.zeros(3)])
    with pytest.raises(ValueError, match=r"tensors\[0\].shape"):
        advance(state, {"kind": "merged"}, tensors=[torch.zeros(3)])


def test_a_vr_update_survives_a_skip_the_policy_chose(tmp_path: Path) -> None:
    """VR trains on its own loss: once a finite step's reply is sent, its VR update stands whatever IP's decision."""
    state, s = make(tiny_config())
    vr_before = params(s.vr)
    advance(state, None)
    vr_after = params(s.vr)
    assert any(not torch.equal(x, y) for x, y in zip(vr_before, vr_after))
    ip_before = params(s.ip)
    res, _ = advance(state, {"kind": "skip"}, nxt=False)
    assert res["step"] == 0 and res["skipped"] == 1
    assert all(torch.equal(x, y) for x, y in zip(ip_before, params(s.ip)))
    assert all(torch.equal(x, y) for x, y in zip(vr_after, params(s.vr)))
