"""Shared fixtures: a seeded RNG for every test and a device-aware tensor factory."""
from __future__ import annotations

import os

import pytest
import torch

DEVICE = torch.device(os.environ.get("GRADPROM_TEST_DEVICE", "cpu"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def device() -> torch.device:
    return DEVICE


def randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A random tensor on the test device."""
    return torch.randn(*shape, dtype=dtype, device=DEVICE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a slower case (seconds, not minutes)")
