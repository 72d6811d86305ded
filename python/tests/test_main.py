"""The sidecar process (gradprom_sidecar.__main__): what it leaves behind when its parent is gone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradprom_sidecar.__main__ import EXIT_PARENT_GONE, main


def test_a_sidecar_whose_parent_died_during_its_start_removes_its_ipc_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "gradprom-test"
    folder.mkdir(mode=0o700)
    (folder / "sidecar.sock").touch()
    monkeypatch.setenv("GRADPROM_TOKEN", "t" * 64)
    not_our_parent = os.getpid()  # getppid() differs: as if Node had died and we were re-parented
    argv = ["--endpoint", f"ipc://{folder}/sidecar.sock", "--device", "cpu", "--parent-pid", str(not_our_parent)]
    assert main(argv) == EXIT_PARENT_GONE
    assert not folder.exists()


def test_only_a_folder_typescript_made_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("GRADPROM_TOKEN", "t" * 64)
    argv = ["--endpoint", f"ipc://{folder}/sidecar.sock", "--device", "cpu", "--parent-pid", str(os.getpid())]
    assert main(argv) == EXIT_PARENT_GONE
    assert folder.exists()
