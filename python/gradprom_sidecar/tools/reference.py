"""The in-process reference run: the training loop with no bridge, the oracle for the TypeScript trainer.

    python -m gradprom_sidecar.tools.reference CONFIG [--steps N] [--out IP.safetensors] [--log LOG.jsonl] [--timing]
    python -m gradprom_sidecar.tools.reference CONFIG --describe

CONFIG is an experiment config, JSON (or YAML when PyYAML is installed), whole or partial: it is
resolved over the defaults exactly as ``gradprom train`` resolves it (``config.resolve``), so the
``config.json`` of a run folder and the file given to ``gradprom train`` both work. ``--describe``
builds the session and prints ``{blocks, ip_params, vr_params, config}`` (IP's parameter blocks,
the two networks' sizes, the resolved config) as JSON, without training. The loop:
Session → ``vr.pretrain(vr.pretrain_steps)`` → per step: eval (val) every ``train.eval_every``
steps, grads (gram transport) → after_grads → ``policies.weights`` → apply, or skip when not
finite (more than ``train.max_skips`` skips in a row stops the run) → at the end eval on val and
test. The session's operations run in the order ``train.advance`` runs them for the TypeScript
trainer, so the two agree to float rounding.

Log lines (JSONL): ``{kind: "pretrain", ...}``, ``{kind: "step", step, loss_ip, loss_vr, cos, gate,
gate_rate, ip_norm, vr_norm, lambda_eff, ip_descent, ip_descent_actual, skipped, ms}`` (no descent
fields on a skipped step), ``{kind: "eval", split, step, ...metrics}``.
``--timing`` prints the median step time (grads + policy + apply, ms) after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from gradprom_sidecar.evaluation.evaluate import evaluate
from gradprom_sidecar.tools import policies
from gradprom_sidecar.training.config import read_config_file, resolve, setting
from gradprom_sidecar.training.descent import ip_descent
from gradprom_sidecar.training.device import resolve_device
from gradprom_sidecar.training.grads import StepGrads
from gradprom_sidecar.training.pretrain import pretrain
from gradprom_sidecar.training.session import Session

WARMUP_STEPS = 10  # steps left out of the timing median


class TooManySkips(RuntimeError):
    """More than ``train.max_skips`` non-finite steps in a row."""


def reference_step(session: Session, policy_cfg: dict) -> tuple[StepGrads, dict, float]:
    """One step with no bridge, in the sidecar's order: grads → after_grads (what the sidecar does after its
    reply: VR's update, the next inputs) → ``policies.weights`` → apply, or skip when not finite.

    :returns: the gradients' summary, the policy's telemetry, and the step's time in ms.
    """
    t0 = time.perf_counter()
    step = session.pipeline
    g = step.grads()
    step.after_grads()
    if g.finite:
        context = {"seed": int(setting(session.config, "seed")), "step": session.step}  # what the TypeScript trainer passes
        w_ip, w_vr, tel = policies.weights(policy_cfg, g.gram, context)
        step.apply(w_ip, w_vr)
        tel = {**tel, "ip_descent": ip_descent(g.gram, w_ip, w_vr), "ip_descent_actual": step.ip_descent_actual()}
    else:
        step.skip()
        tel = {"cos": 0.0, "gate": None, "gate_rate": 0.0, "ip_norm": math.nan, "vr_norm": math.nan, "lambda_eff": 0.0}
    return g, tel, (time.perf_counter() - t0) * 1000.0


def run_reference(
    config: dict, steps: int | None = None, device: torch.device | None = None, on_line: Callable[[dict], None] | None = None
) -> dict:
    """Run the reference loop and return what it saw.

    :param config: the resolved experiment config.
    :param steps: optimisation steps (default ``train.steps``).
    :param device: default: ``config.device`` resolved as the sidecar does.
    :param on_line: called with each log line as it is made.
    :returns: ``{steps, skipped, pretrain, evals, log, gate_rate, median_step_ms, ip_state, session}``.
    """
    dev = device if device is not None else resolve_device(str(setting(config, "device")))
    total = int(setting(config, "train.steps")) if steps is None else int(steps)
    eval_every = int(setting(config, "train.eval_every"))
    max_skips = int(setting(config, "train.max_skips"))
    policy_cfg = setting(config, "policy")
    log: list[dict] = []

    def emit(line: dict) -> None:
        log.append(line)
        if on_line is not None:
            on_line(line)

    session = Session(config, dev)
    pre = pretrain(session, int(setting(config, "vr.pretrain_steps")))
    emit({"kind": "pretrain", **pre})
    evals: list[dict] = []
    times: list[float] = []
    gates: list[float] = []
    in_a_row = 0
    while session.step < total:
        if eval_every and session.step % eval_every == 0 and in_a_row == 0:
            evals.append(evaluate(session, "val"))
            emit({"kind": "eval", **evals[-1]})
        g, tel, ms = reference_step(session, policy_cfg)
        in_a_row = 0 if g.finite else in_a_row + 1
        times.append(ms)
        if g.finite:
            gates.append(tel["gate_rate"])
        emit({"kind": "step", "step": session.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, **tel, "skipped": not g.finite, "ms": ms})
        if in_a_row > max_skips:
            raise TooManySkips(f"train.max_skips: {in_a_row} non-finite steps in a row at step {session.step}")
    for split in ("val", "test"):
        evals.append(evaluate(session, split))
        emit({"kind": "eval", **evals[-1]})
    timed = times[WARMUP_STEPS:] if len(times) > WARMUP_STEPS else times
    return {
        "steps": session.step,
        "skipped": session.pipeline.skipped,
        "pretrain": pre,
        "evals": evals,
        "log": log,
        "gate_rate": sum(gates) / len(gates) if gates else 0.0,
        "median_step_ms": statistics.median(timed) if timed else math.nan,
        "ip_state": {k: v.detach().cpu().clone() for k, v in session.ip.state_dict().items()},
        "session": session,
    }


def _json_line(obj: dict) -> str:
    return json.dumps(obj, allow_nan=True, default=lambda o: float(o) if hasattr(o, "__float__") else str(o))


def describe(config: dict, device: torch.device | None = None) -> dict:
    """What ``session.create`` builds from ``config``, without training: ``{blocks, ip_params, vr_params, config}``.

    :param config: the resolved experiment config.
    :param device: default: ``config.device`` resolved as the sidecar does.
    """
    dev = device if device is not None else resolve_device(str(setting(config, "device")))
    s = Session(config, dev)
    info = s.describe()
    return {
        "blocks": [b["name"] for b in info["layout"]["blocks"]],
        "ip_params": info["ip_params"],
        "vr_params": info["vr_params"],
        "config": config,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gradprom_sidecar.tools.reference", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("config", help="experiment config, whole or partial (JSON; YAML with PyYAML)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default train.steps)")
    p.add_argument("--out", default=None, help="write the final IP state_dict here (.safetensors)")
    p.add_argument("--log", default=None, help="write the JSONL log here")
    p.add_argument("--timing", action="store_true", help=f"print the median step time (ms) after {WARMUP_STEPS} warm-up steps")
    p.add_argument("--device", default=None, help="override config.device (auto | cpu | cuda | cuda:N)")
    p.add_argument(
        "--describe", action="store_true", help="print the networks' blocks and sizes and the resolved config as JSON; no training"
    )
    args = p.parse_args(argv)
    try:
        config = resolve(read_config_file(args.config))
    except ValueError as e:
        print(f"gradprom reference: {e}", file=sys.stderr)
        return 2
    if args.describe:
        print(json.dumps(describe(config, resolve_device(args.device) if args.device else None)))
        return 0
    log_file = open(args.log, "w") if args.log else None
    try:

        def on_line(line: dict) -> None:
            if log_file is not None:
                log_file.write(_json_line(line) + "\n")
                log_file.flush()

        dev = resolve_device(args.device) if args.device else None
        result = run_reference(config, args.steps, dev, on_line)
    finally:
        if log_file is not None:
            log_file.close()
    if args.out:
        from safetensors.torch import save_file

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in result["ip_state"].items()}, args.out)
    final = {e["split"]: {k: v for k, v in e.items() if k != "ssim_convention"} for e in result["evals"][-2:]}
    print(_json_line({"steps": result["steps"], "skipped": result["skipped"], "gate_rate": result["gate_rate"], "final": final}))
    if args.timing:
        print(f"median step: {result['median_step_ms']:.1f} ms ({torch.get_num_threads()} threads, {result['session'].device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
