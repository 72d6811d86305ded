"""gpu-check: what a GPU machine with only Python and a CUDA PyTorch can tell about gradprom's compute half.

    python3 scripts/gpu-check [--cpu] [--out FILE] [--without zmq,msgpack,...] [--skip suite,agree,profile,resume,properties]

(a) ``suite``: the sidecar's pytest suite with ``GRADPROM_TEST_DEVICE=cuda``, listing the tests that
fail there (with why) and those skipped (with why: no pyzmq, msgpack, pydicom, nibabel, ...);
(b) ``agree``: the reference loop on the CPU against CUDA, step by step;
(c) ``profile``: ms per step by phase, peak memory and host-device syncs per step at paper scale
(224×224 RGB, batch 16: SRResNet 64×16 + ResNet-50 denoising, SRResNet ×4 + ResNet-50, UNet + UNet);
(d) ``resume``: a checkpoint saved and restored on CUDA;
(e) ``properties``: what CUDA promises to match the CPU in (stored levels to [0, 1], the Gram's bits on a repeat, the
region's pinning).

It writes a markdown section for docs/BENCHMARKS.md to ``--out`` (default runs/gpu-check.md) and
to stdout, and exits 1 when a part fails. The file is rewritten as each part finishes, and a part that raises
is reported with its error while the others still run. Needs neither Node nor pyzmq nor msgpack nor pydicom.
``--cpu`` runs the same parts at small sizes on the CPU (a few test files, tiny networks) so that
a machine without a GPU checks the script itself; ``--without`` makes modules unimportable, as on
a bare GPU machine. Budget: about 8 minutes on one H100 (the pytest part is stopped at
``SUITE_TIMEOUT_S``: interrupted, so that pytest reports the tests it ran, then its process group ended).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PARTS = ("suite", "agree", "profile", "resume", "properties")
# What a bare GPU machine may lack (gradprom's own modules import none of them at the top of the compute half).
OPTIONAL = ("zmq", "msgpack", "pydicom", "nibabel", "skimage", "torchmetrics", "tensorboard", "safetensors", "pytest")
SUITE_TIMEOUT_S = {"cuda": 300.0, "cpu": 150.0}
# --cpu: the mechanism, quickly: the compute half without the wire, a wire test and a DICOM test stand for the suite.
# A whole file skipped for a missing module (volumes: nibabel; tbwriter: tensorboard) shows how those are listed.
CPU_TESTS = ["tests/test_device.py", "tests/test_protocol.py", "tests/test_enhance.py", "tests/test_volumes.py", "tests/test_tbwriter.py"]
REPO = Path(__file__).resolve().parents[4]

_BLOCKER = textwrap.dedent(
    """
    # Written by gpu-check --without: these modules cannot be imported, as on a bare GPU machine.
    import sys

    class _Blocked:
        names = {names!r}

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {{name!r}} (gpu-check --without)")
            return None

    sys.meta_path.insert(0, _Blocked())
    """
)


def _block(names: set[str], folder: Path) -> dict[str, str]:
    """Make ``names`` unimportable here and in child processes (a sitecustomize on their PYTHONPATH)."""
    (folder / "sitecustomize.py").write_text(_BLOCKER.format(names=sorted(names)))
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]
    scope: dict[str, Any] = {}
    exec((folder / "sitecustomize.py").read_text(), scope)  # this process too
    return {"PYTHONPATH": str(folder)}


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/gpu-check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="small sizes on the CPU (checks the script; under 3 minutes)")
    p.add_argument("--out", default=None, help="markdown file to write (default runs/gpu-check.md, or runs/gpu-check-cpu.md)")
    p.add_argument(
        "--without",
        default="",
        help="comma-separated modules to make unimportable (zmq,msgpack,pydicom,nibabel,torchmetrics,tensorboard,skimage)",
    )
    p.add_argument("--skip", default="", help=f"comma-separated parts to leave out ({', '.join(PARTS)})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        print(f"gpu-check: --skip: unknown part(s) {', '.join(sorted(skip - set(PARTS)))} (known: {', '.join(PARTS)})", file=sys.stderr)
        return 2
    # Before CUDA starts: cuBLAS then has a deterministic mode for the checkpoint part (and for the tests).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with tempfile.TemporaryDirectory(prefix="gradprom-gpu-check-") as tmp:
        env = _block({m for m in args.without.split(",") if m}, Path(tmp)) if args.without else {}
        return _run(args, skip, env, Path(tmp))


def _missing(names: tuple[str, ...]) -> list[str]:
    import importlib.util

    out = []
    for n in names:
        try:
            found = importlib.util.find_spec(n) is not None
        except ImportError:
            found = False
        if not found:
            out.append(n)
    return out


def _run(args: argparse.Namespace, skip: set[str], env: dict[str, str], tmp: Path) -> int:
    import torch

    from gradprom_sidecar.tools.gpucheck import report
    from gradprom_sidecar.tools.gpucheck.agree import agree
    from gradprom_sidecar.tools.gpucheck.profile import profile
    from gradprom_sidecar.tools.gpucheck.properties import device_properties
    from gradprom_sidecar.tools.gpucheck.resume import resume_check
    from gradprom_sidecar.tools.gpucheck.scenarios import CPU_VARIANTS, VARIANTS, paper, small
    from gradprom_sidecar.tools.gpucheck.suite import run_suite

    if not args.cpu and not torch.cuda.is_available():
        print(f"gpu-check: CUDA is not available to this PyTorch ({torch.__version__}); use --cpu to check the script", file=sys.stderr)
        return 3
    device = torch.device("cpu" if args.cpu else "cuda")
    dev_name = "CPU" if args.cpu else torch.cuda.get_device_name(device)
    t0 = time.perf_counter()
    missing = _missing(OPTIONAL)
    scenarios = small() if args.cpu else paper()
    out = Path(args.out) if args.out else REPO / "runs" / ("gpu-check-cpu.md" if args.cpu else "gpu-check.md")
    out.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"gpu-check: {msg} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    def suite() -> tuple[bool, list[str]]:
        if "pytest" in missing:
            return True, report.suite_lines(None, ["pytest is not installed"])
        r = run_suite(device.type, CPU_TESTS if args.cpu else ["tests"], SUITE_TIMEOUT_S[device.type], env, tmp)
        return r.ok, report.suite_lines(r, [])

    def agreement() -> tuple[bool, list[str]]:
        small_first = small()[0]  # the numbers, not the time: small networks on both devices
        a = agree(small_first, device, steps=8 if device.type == "cuda" else 4, pretrain=5 if device.type == "cuda" else 2)
        return a.ok, [f"Scenario: {small_first.what}.", "", *report.agree_lines(a)]

    def step_profile() -> tuple[bool, list[str]]:
        rows = []
        for sc in scenarios:
            for v in CPU_VARIANTS if args.cpu else VARIANTS:
                log(f"(c) step profile: {sc.name}, {v.name}")
                rows.append(profile(sc, v, device, warmup=3 if args.cpu else 10, steps=5 if args.cpu else 40))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        return True, report.profile_lines(rows)

    def resume() -> tuple[bool, list[str]]:
        torch.use_deterministic_algorithms(True, warn_only=True)  # here only: the profile measures the default kernels
        try:
            c = resume_check(small()[0] if args.cpu else scenarios[0], device, before=3, after=3)
        finally:
            torch.use_deterministic_algorithms(False)
        return c.ok, report.resume_lines(c)

    def properties() -> tuple[bool, list[str]]:
        ok, lines = device_properties(device, big=not args.cpu)
        return ok, lines

    plan = [
        ("suite", "(a) The sidecar's tests on the device", suite),
        ("agree", "(b) The reference loop, CPU against the device", agreement),
        ("profile", "(c) Step profile: ms per step by phase (median)", step_profile),
        ("resume", "(d) Checkpoint save and restore on the device", resume),
        ("properties", "(e) What the device promises to match the CPU in", properties),
    ]
    parts: dict[str, list[str]] = {}
    ok = True
    for key, title, run in plan:
        if key in skip:
            continue
        log(title)
        try:
            passed, lines = run()
        except Exception as e:  # noqa: BLE001  (a part that fails is reported; the others still run)
            passed, lines = False, report.failed_lines(e)
            log(f"{title}: FAILED ({type(e).__name__}: {e})")
            if device.type == "cuda":
                torch.cuda.empty_cache()  # an out-of-memory part leaves the next one its memory
        ok &= passed
        parts[title] = lines
        _write(out, report.render(_title(args, dev_name), _setup(args, dev_name, missing, skip, t0), parts))  # part by part
    text = out.read_text() if parts else report.render(_title(args, dev_name), _setup(args, dev_name, missing, skip, t0), parts)
    _write(out, text)
    print(text)
    log(f"wrote {out}; {'all parts passed' if ok else 'SOME PARTS FAILED'}")
    return 0 if ok else 1


def _write(out: Path, text: str) -> None:
    """Replace ``out`` whole (a reader never sees half a report)."""
    part = out.with_name(out.name + ".part")
    part.write_text(text)
    part.replace(out)


def _title(args: argparse.Namespace, dev_name: str) -> str:
    return f"GPU check: {dev_name}" + (" (script check)" if args.cpu else "")


def _setup(args: argparse.Namespace, dev_name: str, missing: list[str], skip: set[str], t0: float) -> list[str]:
    import torch

    setup = [
        f"- Device: {dev_name}; torch {torch.__version__} (CUDA {torch.version.cuda}), Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        f"- Command: `python3 scripts/gpu-check{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`; "
        f"wall time so far {time.perf_counter() - t0:.0f} s.",
        f"- Not installed here: {', '.join(missing) if missing else 'nothing gradprom uses'}"
        + (f" (made unimportable with --without: {args.without})" if args.without else "")
        + (f"; parts left out: {', '.join(sorted(skip))}" if skip else "")
        + ".",
    ]
    if args.cpu:
        setup.insert(0, "- **`--cpu`: small sizes on the CPU, to check the script; not figures to quote.**")
    return setup
