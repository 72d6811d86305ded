"""The in-process reference run: the training loop with no bridge, the oracle for the TypeScript trainer.

    python -m gradprom_sidecar.reference CONFIG.json [--steps N] [--out IP.safetensors] [--log LOG.jsonl] [--timing]

CONFIG.json is a resolved experiment config (the ``config.json`` of a run folder). The loop:
Session → ``vr.pretrain(vr.pretrain_steps)`` → per step: eval (val) every ``train.eval_every``
steps, grads (gram transport) → ``policies.weights`` → apply, or skip when not finite (more than
``train.max_skips`` skips in a row stops the run) → at the end eval on val and test.

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
from typing import Any, Callable

import torch

from . import policies
from .descent import ip_descent
from .grads import StepGrads
from .registry import Context, Result, op
from .server import resolve_device
from .session import Session, cfg_get, session_of

WARMUP_STEPS = 10  # steps left out of the timing median


class TooManySkips(RuntimeError):
    """More than ``train.max_skips`` non-finite steps in a row."""


def reference_step(session: Session, policy_cfg: dict) -> tuple[StepGrads, dict, float]:
    """One step with no bridge: grads → ``policies.weights`` → apply, or skip when not finite.

    :returns: the gradients' summary, the policy's telemetry, and the step's time in ms.
    """
    t0 = time.perf_counter()
    g = session.grads()
    if g.finite:
        w_ip, w_vr, tel = policies.weights(policy_cfg, g.gram)
        applied = session.apply(w_ip, w_vr)
        tel = {**tel, "ip_descent": ip_descent(g.gram, w_ip, w_vr), "ip_descent_actual": applied["ip_descent_actual"]}
    else:
        session.skip()
        tel = {"cos": 0.0, "gate": None, "gate_rate": 0.0, "ip_norm": math.nan, "vr_norm": math.nan, "lambda_eff": 0.0}
    return g, tel, (time.perf_counter() - t0) * 1000.0


@op("train.step", all_ranks=True)
def train_step(ctx: Context, args: dict[str, Any], tensors: list[torch.Tensor]) -> Result:
    """One whole step inside the sidecar with the config's built-in policy: the in-process reference
    on the session the bridge drives (``npm run bench`` times the bridge against it)."""
    s = session_of(ctx)
    g, tel, ms = reference_step(s, cfg_get(s.config, "policy"))
    return {"step": s.step, "loss_ip": g.loss_ip, "loss_vr": g.loss_vr, "finite": g.finite, **tel, "ms": ms}, []


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
    dev = device if device is not None else resolve_device(str(config.get("device", "auto")))
    total = int(cfg_get(config, "train.steps")) if steps is None else int(steps)
    eval_every = int(cfg_get(config, "train.eval_every") or 0)
    max_skips = int(cfg_get(config, "train.max_skips"))
    policy_cfg = cfg_get(config, "policy")
    log: list[dict] = []

    def emit(line: dict) -> None:
        log.append(line)
        if on_line is not None:
            on_line(line)

    session = Session(config, dev)
    pre = session.pretrain(int(cfg_get(config, "vr.pretrain_steps")))
    emit({"kind": "pretrain", **pre})
    evals: list[dict] = []
    times: list[float] = []
    gates: list[float] = []
    in_a_row = 0
    while session.step < total:
        if eval_every and session.step % eval_every == 0 and in_a_row == 0:
            evals.append(session.evaluate("val"))
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
        evals.append(session.evaluate(split))
        emit({"kind": "eval", **evals[-1]})
    timed = times[WARMUP_STEPS:] if len(times) > WARMUP_STEPS else times
    return {
        "steps": session.step,
        "skipped": session.skipped,
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gradprom_sidecar.reference", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("config", help="resolved experiment config (JSON)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default train.steps)")
    p.add_argument("--out", default=None, help="write the final IP state_dict here (.safetensors)")
    p.add_argument("--log", default=None, help="write the JSONL log here")
    p.add_argument("--timing", action="store_true", help=f"print the median step time (ms) after {WARMUP_STEPS} warm-up steps")
    p.add_argument("--device", default=None, help="override config.device (auto | cpu | cuda | cuda:N)")
    args = p.parse_args(argv)
    try:
        config = json.loads(Path(args.config).read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"{args.config}: cannot read config: {e}", file=sys.stderr)
        return 2
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
