"""TensorBoard event files for a run, written by PyTorch's ``SummaryWriter`` from the records the TypeScript loop logs.

``python -m gradprom_sidecar.tools.tbwriter LOGDIR`` reads one JSON record a line on stdin (the lines
of metrics.jsonl, plus one ``{"type": "config", "config": {...}}``) and writes them as events
under LOGDIR until stdin closes. It runs as its own process beside the sidecar, not as a sidecar
op: the step costs no extra message, a sidecar restarted after a crash does not lose the writer,
and a writer that fails cannot stop training.

What goes where (tags):

- ``train/<field>`` per step at the step number: loss_ip, loss_vr, cos, gate (1 open, 0 closed),
  gate_rate, ip_norm, vr_norm, lambda_eff, lr_ip, lr_vr, time_ms (non-finite values and skipped
  steps are left out; ``train/skipped`` counts the skips so far);
- ``eval/<split>/<metric>`` per evaluation at its step; ``pretrain/<field>`` at step 0;
- ``config``: the resolved config as JSON text.

A ``resume`` record that comes first (a run resumed at step k) opens the writer with
``purge_step`` k + 1, so TensorBoard drops what the interrupted run had logged past its checkpoint.
"""

from __future__ import annotations

import json
import math
import sys
from typing import IO, Any

STEP_FIELDS = ("loss_ip", "loss_vr", "cos", "gate", "gate_rate", "ip_norm", "vr_norm", "lambda_eff", "lr_ip", "lr_vr", "time_ms")


def _number(v: Any) -> float | None:
    """``v`` as a finite float (booleans as 0/1), or None."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


class RunWriter:
    """Turns run records into TensorBoard events (see the module docstring).

    :param logdir: the event files' folder.
    :param flush_secs: how often pending events reach the disk, seconds.
    """

    def __init__(self, logdir: str, flush_secs: int = 5) -> None:
        self.logdir = logdir
        self.flush_secs = flush_secs
        self.writer: Any = None
        self.config: str | None = None
        self.skipped = 0

    def _open(self, purge_step: int | None = None) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(self.logdir, purge_step=purge_step, flush_secs=self.flush_secs)
            if self.config is not None:
                self.writer.add_text("config", self.config, 0)
        return self.writer

    def write(self, record: dict[str, Any]) -> None:
        """Write one record.

        :param record: a metrics.jsonl record, or ``{"type": "config", "config": ...}``.
        """
        kind, step = record.get("type"), int(record.get("step") or 0)
        if kind == "config":
            # Markdown code block, so TensorBoard's text tab keeps the indentation.
            self.config = "```\n" + json.dumps(record.get("config"), indent=2) + "\n```"
            if self.writer is not None:
                self.writer.add_text("config", self.config, 0)
            return
        if kind == "resume":
            self._open(purge_step=step + 1)
            return
        w = self._open()
        if kind == "step":
            if record.get("skipped"):
                self.skipped += 1
                w.add_scalar("train/skipped", self.skipped, step)
                return
            for key in STEP_FIELDS:
                value = _number(record.get(key))
                if value is not None:
                    w.add_scalar(f"train/{key}", value, step)
        elif kind == "eval":
            split = record.get("split", "val")
            for key, v in record.items():
                value = _number(v)
                if key not in ("type", "step", "split") and value is not None:
                    w.add_scalar(f"eval/{split}/{key}", value, step)
            w.flush()
        elif kind == "pretrain":
            for key, v in record.items():
                value = _number(v)
                if key != "type" and value is not None:
                    w.add_scalar(f"pretrain/{key}", value, 0)

    def close(self) -> None:
        """Flush and close the event file; with no record written there is none (a run that failed to start leaves no trace)."""
        if self.writer is not None:
            self.writer.close()


def serve(logdir: str, lines: IO[str]) -> int:
    """Write every record read from ``lines`` until it ends; a line that is not a JSON object is reported and skipped.

    :param logdir: the event files' folder.
    :param lines: the input stream.
    :returns: the number of records written.
    """
    writer = RunWriter(logdir)
    count = 0
    try:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"gradprom tbwriter: skipped a line that is not JSON ({e})", file=sys.stderr)
                continue
            if isinstance(record, dict):
                writer.write(record)
                count += 1
    finally:
        writer.close()
    return count


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m gradprom_sidecar.tools.tbwriter LOGDIR  (records as JSON lines on stdin)", file=sys.stderr)
        sys.exit(2)
    serve(sys.argv[1], sys.stdin)
