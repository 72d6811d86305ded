"""Optimisation pieces (gradprom_sidecar.training.optim): the learning-rate schedules, alone and inside a session."""

from __future__ import annotations

import pytest
from helpers import call, make, optim_section, tiny_config

from gradprom_sidecar.training.optim import lr_factor


def test_lr_schedules() -> None:
    o = optim_section(schedule="step", step_size=10, gamma=0.5)
    assert [lr_factor(o, k, 100) for k in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    o = optim_section(schedule="cosine", warmup_steps=4)
    assert lr_factor(o, 0, 104) == 0.25 and lr_factor(o, 3, 104) == 1.0
    assert lr_factor(o, 54, 104) == pytest.approx(0.5) and lr_factor(o, 104, 104) == pytest.approx(0.0, abs=1e-12)
    state, _ = make(tiny_config(train={"ip_optim": optim_section(schedule="step", step_size=1, gamma=0.1)}))
    call(state, "train.grads", {"transport": "gram"})
    n = len(state.session.layout)
    res, _ = call(state, "train.apply", {"weights": {"ip": [1.0] * n, "vr": [0.0] * n}})
    assert {k: v for k, v in res.items() if k != "ip_descent_actual"} == {"step": 1, "lr_ip": 1e-3, "lr_vr": 1e-3}
    assert -1.0 <= res["ip_descent_actual"] <= 1.0
    call(state, "train.grads", {"transport": "gram"})
    res, _ = call(state, "train.apply", {"weights": {"ip": [1.0] * n, "vr": [0.0] * n}})
    assert res["lr_ip"] == pytest.approx(1e-4)
