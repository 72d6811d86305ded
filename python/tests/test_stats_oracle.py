"""The committed statistics oracle (test/fixtures/stats-oracle.json) is what scipy gives today."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("scipy", reason="scipy is a test requirement (python/requirements.txt)")

from stats_oracle import FIXTURE, oracle  # noqa: E402


def _close(got: object, want: object, path: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for k in want:
            _close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


def test_committed_fixture_is_current() -> None:
    committed = json.loads(FIXTURE.read_text(encoding="utf-8"))
    _close(committed, oracle(), "oracle")
