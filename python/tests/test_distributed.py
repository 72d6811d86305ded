"""Scale-out (gradprom_sidecar.training.distributed): 2 gloo ranks on the CPU against one process.

The 2 ranks split each global batch of 8 into 4 + 4 images; a process alone takes all 8. The
global gradients' norms agree to a relative 1e-5 and their cosine to 1e-6 at every step, the gate decisions are
identical, and the IP parameters after 10 SGD steps agree to TOL = 1e-5 (float32 rounding: the
mean of two half-batch gradients is not bit-equal to the full-batch gradient). SGD, not Adam:
Adam divides by sqrt(v), so an element whose gradient is as small as that rounding noise can move
by up to lr per step differently (VR pretraining is Adam: 3 steps only). The models have no
BatchNorm (srresnet without batch_norm, smallresnet with GroupNorm), whose statistics would be
per rank, and are narrow, with one thread per rank: a ReLU whose input sits within rounding of 0
passes the gradient or not, which a wider VR with 2 threads per rank showed after 2 steps.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import call, optim_section, tiny_config

from gradprom_sidecar.tools import policies
from gradprom_sidecar.training import distributed as D
from gradprom_sidecar.wire.registry import ALL_RANKS, HANDLERS, State

TOL = 1e-5  # max |Δ| of any IP parameter, 2 ranks vs 1 process, after STEPS steps
STEPS, SPLIT = 10, 5
FIXTURE = Path(__file__).parent / "fixtures" / "ddp_rank.py"


def ddp_config() -> dict:
    sgd = optim_section(name="sgd", lr=0.01)
    return tiny_config(
        data={"counts": {"train": 64, "val": 16, "test": 32}},
        ip={"channels": 8, "blocks": 1},
        vr={"pretrain_steps": 3},
        train={"steps": STEPS, "batch_size": 8, "ip_optim": sgd, "vr_optim": sgd},
        policy={"name": "gradprom", "lambda": 0.5, "lambda_mode": "plain", "threshold": 0, "granularity": "global"},
    )


def cpu_state() -> State:
    return State(device=torch.device("cpu"), devices=["cpu"])


def one_process(config: dict, ckpt: Path) -> dict:
    """The same scenario as ddp_rank.py, in this process (the reference), on the CPU as the gloo ranks are.

    On the test device it would draw its noise from another generator (CUDA's), so its inputs would differ from step 1.
    """
    state = cpu_state()
    call(state, "session.create", {"config": config})
    out: dict = {"gates": [], "losses": []}
    out["pretrain"], _ = call(state, "vr.pretrain", {"steps": config["vr"]["pretrain_steps"]})
    while state.session.step < STEPS:
        g, _ = call(state, "train.grads", {"transport": "gram"})
        w_ip, w_vr, tel = policies.weights(config["policy"], g["gram"])
        out["gates"].append(tel["gate"])
        out["losses"].append((g["loss_ip"], g["loss_vr"], tel["ip_norm"], tel["vr_norm"], tel["cos"]))
        call(state, "train.apply", {"weights": {"ip": w_ip, "vr": w_vr}})
        if state.session.step == SPLIT:
            call(state, "checkpoint.save", {"path": str(ckpt)})
    out["eval"], _ = call(state, "eval", {"split": "val"})
    out["ip"] = {k: v.clone() for k, v in state.session.ip.state_dict().items()}
    out["vr"] = {k: v.clone() for k, v in state.session.vr.state_dict().items()}
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("ddp")
    config = ddp_config()
    (tmp / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    single = one_process(config, tmp / "ckpt1.pt")
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        args = [
            sys.executable,
            str(FIXTURE),
            str(tmp / "config.json"),
            str(tmp / "out.pt"),
            str(tmp / "ckpt1.pt"),
            str(tmp / "ckpt2.pt"),
            str(STEPS),
            str(SPLIT),
        ]
        procs.append(subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True))
    errs = []
    for p in procs:
        try:
            errs.append(p.communicate(timeout=120)[1])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    assert procs[0].returncode == 0, errs[0]
    return {
        "single": single,
        "ranks": torch.load(tmp / "out.pt", weights_only=False),
        "config": config,
        "tmp": tmp,
        "worker_code": procs[1].returncode,
        "worker_stderr": errs[1],
    }


@pytest.mark.slow
def test_two_ranks_match_one_process(runs: dict) -> None:
    one, two = runs["single"], runs["ranks"]
    assert two["gates"] == one["gates"]  # the same decision at every step
    assert len(two["gates"]) == STEPS and len(set(one["gates"])) == 2  # both decisions occur
    # Losses, ‖g_IP‖, ‖g_VR‖ and the cosine: the policy saw the global gradients.
    for mine, theirs in zip(two["losses"], one["losses"]):
        assert mine[:4] == pytest.approx(theirs[:4], rel=1e-5)
        assert mine[4] == pytest.approx(theirs[4], abs=1e-6)  # a cosine near 0: absolute error is what counts
    assert max_diff(two["ip"], one["ip"]) <= TOL
    assert max_diff(two["vr"], one["vr"]) <= TOL
    assert two["pretrain"]["loss"] == pytest.approx(one["pretrain"]["loss"], rel=1e-5)


MACHINE_FACTS = {"device", "peak_memory_mb"}


@pytest.mark.slow
def test_eval_metrics_are_gathered_over_all_images(runs: dict) -> None:
    one, two = runs["single"]["eval"], runs["ranks"]["eval"]
    assert two["n"] == one["n"] == 16
    assert two.keys() == one.keys()
    for k, v in one.items():
        if k in MACHINE_FACTS:  # facts of each process, not results
            continue
        if isinstance(v, float):
            assert two[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
        else:
            assert two[k] == v, k


@pytest.mark.slow
def test_checkpoints_resume_on_another_number_of_ranks(runs: dict) -> None:
    one = runs["single"]
    # A 1-process checkpoint continued on 2 ranks ...
    assert runs["ranks"]["resumed_gates"] == one["gates"][SPLIT:]
    assert max_diff(runs["ranks"]["resumed_ip"], one["ip"]) <= TOL
    # ... and a 2-rank checkpoint continued in one process (on the CPU too).
    state = cpu_state()
    call(state, "checkpoint.load", {"path": str(runs["tmp"] / "ckpt2.pt")})
    gates = []
    while state.session.step < STEPS:
        g, _ = call(state, "train.grads", {"transport": "gram"})
        w_ip, w_vr, tel = policies.weights(runs["config"]["policy"], g["gram"])
        gates.append(tel["gate"])
        call(state, "train.apply", {"weights": {"ip": w_ip, "vr": w_vr}})
    assert gates == one["gates"][SPLIT:]
    assert max_diff({k: v for k, v in state.session.ip.state_dict().items()}, one["ip"]) <= TOL


@pytest.mark.slow
def test_a_failed_op_stops_the_worker_and_puts_rank_0_out_of_step(runs: dict) -> None:
    assert "args.decision.ip" in runs["ranks"]["failed"]
    assert "out of step" in runs["ranks"]["refused"]
    assert runs["worker_code"] == D.EXIT_OP_FAILED
    last = runs["worker_stderr"].strip().splitlines()[-1]
    assert last.startswith(D.RANK_FAILED)
    report = json.loads(last[len(D.RANK_FAILED) :])
    assert report["rank"] == 1 and report["op"] == "train.advance" and report["type"] == "ValueError"


def test_state_changing_ops_run_on_every_rank() -> None:
    assert {
        "session.create",
        "vr.pretrain",
        "train.advance",
        "eval",
        "checkpoint.load",
    } <= ALL_RANKS
    # Written by rank 0 alone, or rank 0's own business.
    assert not {"checkpoint.save", "enhance", "enhance.files", "vectors.region", "echo"} & ALL_RANKS
    assert ALL_RANKS <= HANDLERS.keys()


def test_rank_env_names_the_missing_or_bad_variable() -> None:
    full = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert D.rank_env(full) == D.RankEnv(1, 2, 1, "127.0.0.1", 29500)
    with pytest.raises(ValueError, match="MASTER_PORT"):
        D.rank_env({k: v for k, v in full.items() if k != "MASTER_PORT"})
    with pytest.raises(ValueError, match="RANK: expected 0..1, got 2"):
        D.rank_env({**full, "RANK": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE: expected an integer"):
        D.rank_env({**full, "WORLD_SIZE": "two"})


def test_rank_device() -> None:
    assert D.rank_device("cpu", 1) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert D.rank_device("auto", 1) == torch.device("cpu")
    with pytest.raises(SystemExit, match="pins one GPU"):
        D.rank_device("cuda:0", 1)
