"""TensorBoard event files for a run, written with the ``tensorboard`` package's event-file writer from the records the TypeScript loop logs.

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

A ``resume`` record that comes first (a run resumed at step k) opens the event file with a session
start at step k + 1 (``SummaryWriter``'s ``purge_step``), so TensorBoard drops what the interrupted run
had logged past its checkpoint.

The events are those PyTorch's ``SummaryWriter`` writes (scalars as ``simple_value``, the config as
text under ``config/text_summary``), built here from ``tensorboard``'s own protos so that the writer
does not import torch: one process per run, about 0.5 s of CPU for a short run instead of 3 s.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import IO, Any

STEP_FIELDS = ("loss_ip", "loss_vr", "cos", "gate", "gate_rate", "ip_norm", "vr_norm", "lambda_eff", "lr_ip", "lr_vr", "time_ms")


def _number(v: Any) -> float | None:
    """``v`` as a finite float (booleans as 0/1), or None."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


class _Events:
    """One event file: scalars and text as ``SummaryWriter`` writes them (imported here: only a run that logs pays for it)."""

    def __init__(self, logdir: str, flush_secs: int, purge_step: int | None) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary, self._tensor, self._shape = event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
        self._file = EventFileWriter(logdir, flush_secs=flush_secs)
        if purge_step is not None:
            # TensorBoard drops the earlier files' events from this step on when it reads a session start.
            self._file.add_event(event_pb2.Event(step=purge_step, file_version="brain.Event:2"))
            self._file.add_event(event_pb2.Event(step=purge_step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def _add(self, value: Any, step: int) -> None:
        self._file.add_event(self._event.Event(summary=self._summary.Summary(value=[value]), wall_time=time.time(), step=step))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._add(self._summary.Summary.Value(tag=tag, simple_value=value), step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        meta = self._summary.SummaryMetadata(plugin_data=self._summary.SummaryMetadata.PluginData(plugin_name="text"))
        shape = self._shape.TensorShapeProto(dim=[self._shape.TensorShapeProto.Dim(size=1)])
        tensor = self._tensor.TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")], tensor_shape=shape)
        self._add(self._summary.Summary.Value(tag=f"{tag}/text_summary", metadata=meta, tensor=tensor), step)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunWriter:
    """Turns run records into TensorBoard events (see the module docstring).

    :param logdir: the event files' folder.
    :param flush_secs: how often pending events reach the disk, seconds.
    """

    def __init__(self, logdir: str, flush_secs: int = 5) -> None:
        self.logdir = logdir
        self.flush_secs = flush_secs
        self.writer: _Events | None = None
        self.config: str | None = None
        self.skipped = 0

    def _open(self, purge_step: int | None = None) -> _Events:
        if self.writer is None:
            self.writer = _Events(self.logdir, self.flush_secs, purge_step)
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
