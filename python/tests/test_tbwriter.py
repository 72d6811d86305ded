"""The TensorBoard writer process (gradprom_sidecar.tools.tbwriter): records in, events out, resume purges the steps past the checkpoint."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from conftest import needs

from gradprom_sidecar.tools.tbwriter import serve

needs("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402  (after the skip check)


def _lines(*records: dict, junk: str = "") -> io.StringIO:
    return io.StringIO("".join(json.dumps(r) + "\n" for r in records) + junk)


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    ea.Reload()
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


def step(k: int, loss: float, **kw: object) -> dict:
    return {"type": "step", "step": k, "loss_ip": loss, "gate": k % 2 == 0, "cos": float("nan") if k == 2 else 0.5, **kw}


def test_records_become_events_and_junk_is_skipped(tmp_path: Path, capsys) -> None:
    n = serve(
        str(tmp_path),
        _lines({"type": "config", "config": {"seed": 1}}, step(1, 0.5), step(2, 0.25), step(2, 9.0, skipped=True), junk="not json\n"),
    )
    assert n == 4 and "skipped a line that is not JSON" in capsys.readouterr().err
    s = _scalars(tmp_path)
    assert s["train/loss_ip"] == [(1, 0.5), (2, 0.25)]  # the skipped step's numbers are not training's
    assert s["train/gate"] == [(1, 0.0), (2, 1.0)]
    assert [k for k, _ in s["train/cos"]] == [1]  # NaN left out
    assert s["train/skipped"] == [(2, 1.0)]


def test_resume_purges_steps_past_the_checkpoint(tmp_path: Path) -> None:
    serve(str(tmp_path), _lines(*(step(k, float(k)) for k in range(1, 6))))  # interrupted after step 5, checkpoint at 3
    serve(str(tmp_path), _lines({"type": "resume", "step": 3}, *(step(k, 10.0 + k) for k in range(4, 7))))
    assert _scalars(tmp_path)["train/loss_ip"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 14.0), (5, 15.0), (6, 16.0)]


def test_no_records_no_event_file(tmp_path: Path) -> None:
    serve(str(tmp_path / "tb"), _lines({"type": "config", "config": {}}))
    assert not (tmp_path / "tb").exists()  # a run that failed before its first record leaves nothing behind


def test_the_config_is_text_and_torch_is_not_imported(tmp_path: Path) -> None:
    # A writer process per run: it must not pay for torch (seconds of CPU) to write a few protos.
    script = "import sys\nfrom gradprom_sidecar.tools.tbwriter import serve\nserve(sys.argv[1], sys.stdin)\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    records = _lines({"type": "config", "config": {"seed": 7}}, step(1, 0.5)).getvalue()
    python_dir = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], input=records, capture_output=True, text=True, cwd=python_dir, check=True
    )
    assert r.stdout.strip() == "[]"
    ea = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    ea.Reload()
    (text,) = ea.Tensors("config/text_summary")
    assert json.loads(text.tensor_proto.string_val[0].decode().strip("`\n")) == {"seed": 7}
