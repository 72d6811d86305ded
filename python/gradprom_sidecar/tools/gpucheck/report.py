"""gpu-check's findings as a markdown section for docs/BENCHMARKS.md."""

from __future__ import annotations

import math
from collections import defaultdict

from gradprom_sidecar.tools.gpucheck.agree import COS_ATOL, LOSS_RTOL, Agreement
from gradprom_sidecar.tools.gpucheck.profile import STEP_PHASES, ProfileResult
from gradprom_sidecar.tools.gpucheck.resume import ResumeCheck
from gradprom_sidecar.tools.gpucheck.suite import SuiteResult


def _ms(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def suite_lines(r: SuiteResult | None, skipped_parts: list[str]) -> list[str]:
    if r is None:
        return ["Not run" + (f" ({'; '.join(skipped_parts)})." if skipped_parts else ".")]
    lines = [
        f"{r.passed} passed, {len(r.failed)} failed, {len(r.skipped)} skipped on `{r.device}` in {r.seconds:.0f} s."
        + (f" **{r.note}.**" if r.note else "")
    ]
    if r.failed:
        lines += ["", "Cannot hold on this device (failed, with the first line of the failure):", ""]
        lines += [f"- `{name}`: {why}" for name, why in r.failed]
    if r.skipped:
        by_reason: dict[str, list[str]] = defaultdict(list)
        for name, why in r.skipped:
            by_reason[why].append(name)
        lines += ["", "Skipped, by reason:", ""]
        lines += [
            f"- {why or '(no reason given)'}: {len(names)} tests ({', '.join(f'`{n}`' for n in names[:4])}{', …' if len(names) > 4 else ''})"
            for why, names in by_reason.items()
        ]
    return lines


def agree_lines(a: Agreement) -> list[str]:
    verdict = "within tolerance" if a.ok else "**outside tolerance**"
    return [
        f"CPU vs `{a.device}`, {a.steps} steps from one start and one input stream: {verdict} "
        f"(losses ≤ {LOSS_RTOL:g} relative, cosine ≤ {COS_ATOL:g} absolute, the same gate decisions).",
        "",
        f"- largest relative loss difference: {a.max_loss_rel:.2e}",
        f"- largest cosine difference: {a.max_cos_abs:.2e}",
        f"- gate decisions compared (cosine clear of the threshold): {a.gates_compared}; differing at steps: {a.gates_differing or 'none'}",
        f"- IP parameters after the steps, largest difference / largest magnitude: {a.ip_max_rel:.2e}",
    ]


def _agreement(r: ProfileResult, base: ProfileResult | None) -> str:
    """Steps where ``r`` took the fp32 row's gate decision, of the steps both took (same seed, same inputs)."""
    if base is None or base is r:
        return "—"
    both = [(a, b) for a, b in zip(r.gates, base.gates) if a is not None and b is not None]  # skipped steps have no gate
    same = sum(a == b for a, b in both)
    return f"{same} of {len(both)} ({same / len(both):.0%})" if both else "—"


def profile_lines(rows: list[ProfileResult]) -> list[str]:
    phases = [p for p in STEP_PHASES if any(p in r.phases_ms for r in rows)]
    head = [
        "scenario",
        "variant",
        "IP / VR params",
        "step (host wall)",
        *phases,
        "peak memory",
        "syncs / step (torch-flagged; read-back)",
        "gate agreement with fp32",
    ]
    base = {r.scenario: r for r in rows if r.variant == "fp32"}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        syncs = "—" if math.isnan(r.syncs_per_step) else f"{r.syncs_per_step:g}; {r.own_syncs_per_step:g}"
        cells = [
            r.scenario,
            r.variant,
            f"{r.ip_params / 1e6:.2f} M / {r.vr_params / 1e6:.2f} M",
            f"{_ms(r.wall_ms)} ms",
            *(_ms(r.phases_ms.get(p, math.nan)) for p in phases),
            f"{r.peak_mib:.0f} MiB",
            syncs,
            _agreement(r, base.get(r.scenario)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r.scenario}: {r.what}; peak memory: {r.peak_kind}." for r in rows]
    lines += [
        "",
        "Each row: production's step (`train.advance` and its deferred work, less the round trip), median of the timed steps.",
        "",
    ]
    lines += [*dict.fromkeys(notes)]  # one line per scenario, not per variant
    lines += [
        f"- {r.scenario}, {r.variant}: {r.skipped} timed steps skipped (fp16 overflow), left out of the medians and the agreement"
        for r in rows
        if r.skipped
    ]
    for r in rows:
        if r.sync_kinds:
            lines += [f"- Syncs torch flagged, {r.scenario}, {r.variant}: " + "; ".join(f"`{k}`" for k in r.sync_kinds)]
    return lines


def resume_lines(c: ResumeCheck) -> list[str]:
    same = "bit-identical" if c.identical else f"largest parameter difference {c.max_abs:.2e}"
    return [
        f"Saved on `{c.device}` after {c.before} steps (next inputs already drawn; {c.bytes / 2**20:.1f} MiB), "
        f"{c.after} more steps, against a fresh session restored from it and trained {c.after} steps "
        f"(SGD with momentum, deterministic kernels where torch has them): {same}. "
        f"Restored on the CPU: {'yes' if c.loads_on_cpu else '**no**'}."
    ]


def failed_lines(e: BaseException) -> list[str]:
    """A part that raised: its error and where (the last frames of its traceback)."""
    import traceback

    frames = traceback.format_exception(e)[-4:]
    return [f"**Failed: {type(e).__name__}: {str(e)[:300]}**", "", "```", *"".join(frames).rstrip().splitlines(), "```"]


def render(title: str, setup: list[str], parts: dict[str, list[str]]) -> str:
    """The section: a title, the setup lines, then one sub-section per part."""
    out = [f"## {title}", "", *setup, ""]
    for name, lines in parts.items():
        out += [f"### {name}", "", *lines, ""]
    return "\n".join(out)
