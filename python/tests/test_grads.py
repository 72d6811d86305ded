"""The two-pass gradients, the per-block Gram and applying a decision (gradprom_sidecar.training.grads)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, dot_approx
from torch import nn

from gradprom_sidecar.models import build_ip, build_vr
from gradprom_sidecar.training import grads as G


def _nets() -> tuple[nn.Module, nn.Module]:
    ip_cfg = {"arch": "srresnet", "in_channels": 1, "scale": 1, "channels": 4, "blocks": 1, "batch_norm": False, "kwargs": {}}
    ip = build_ip(ip_cfg).to(DEVICE)
    vr = build_vr({"arch": "smallresnet", "task": "classify", "normalize": "none", "kwargs": {"widths": [4, 8]}}, 1, 3).to(DEVICE)
    return ip, vr


def _losses(ip: nn.Module, vr: nn.Module, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y_hat = ip(x)
    return G.pixel_loss(y_hat, y), G.task_loss(vr(y_hat), c)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    y = torch.rand(4, 1, 16, 16, generator=g).to(DEVICE)
    x = y + 0.3 * torch.randn(y.shape, generator=g).to(DEVICE)
    return x, y, torch.tensor([0, 1, 2, 1], device=DEVICE)


def _two_pass(ip: nn.Module, vr: nn.Module) -> tuple[G.Layout, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    layout = G.Layout(ip)
    buf = G.GradBuffers(layout, DEVICE)
    l_ip, l_vr = _losses(ip, vr, *_batch())
    g_ip, g_vr = G.two_pass(l_ip, l_vr, buf)
    return layout, g_ip.clone(), g_vr.clone(), {n: p.grad.clone() for n, p in vr.named_parameters()}


def test_layout_blocks_are_packed_in_named_parameters_order() -> None:
    ip, _ = _nets()
    next(ip.parameters()).requires_grad_(False)  # a frozen tensor is not part of the layout
    layout = G.Layout(ip)
    names = [n for n, p in ip.named_parameters() if p.requires_grad]
    assert [b.name for b in layout.blocks] == names
    offset = 0
    for b, p in zip(layout.blocks, layout.params):
        assert b.offset == offset and b.numel == p.numel() and b.shape == tuple(p.shape)
        offset += b.numel
    d = layout.to_dict()
    assert d["numel"] == offset == layout.numel
    assert d["blocks"][0] == {"name": names[0], "shape": list(layout.blocks[0].shape), "numel": layout.blocks[0].numel, "offset": 0}


def test_g_ip_equals_autograd_grad_of_l_ip_alone() -> None:
    ip, vr = _nets()
    layout, g_ip, _, _ = _two_pass(ip, vr)
    l_ip, _ = _losses(ip, vr, *_batch())
    ref = torch.cat([g.reshape(-1) for g in torch.autograd.grad(l_ip, layout.params)])
    assert torch.equal(g_ip, ref)  # accumulating into a zeroed view is exact


def test_two_pass_sum_equals_single_pass_gradient_of_the_sum() -> None:
    ip, vr = _nets()
    layout, g_ip, g_vr, vr_grads = _two_pass(ip, vr)
    l_ip, l_vr = _losses(ip, vr, *_batch())
    ip.zero_grad(set_to_none=True)
    vr.zero_grad(set_to_none=True)
    (l_ip + l_vr).backward()
    ref = torch.cat([p.grad.reshape(-1) for p in layout.params])
    torch.testing.assert_close(g_ip + g_vr, ref, atol=1e-6, rtol=1e-5)
    for n, p in vr.named_parameters():  # ∇φ from pass 2 equals the single-pass VR grad (L_IP never reaches VR)
        torch.testing.assert_close(vr_grads[n], p.grad, atol=1e-6, rtol=1e-5)


def test_g_vr_and_vr_grads_equal_autograd_of_l_vr() -> None:
    ip, vr = _nets()
    layout, _, g_vr, vr_grads = _two_pass(ip, vr)
    _, l_vr = _losses(ip, vr, *_batch())
    vr_params = list(vr.parameters())
    grads = torch.autograd.grad(l_vr, layout.params + vr_params)
    ref = torch.cat([g.reshape(-1) for g in grads[: len(layout.params)]])
    assert torch.equal(g_vr, ref)
    for (n, _), g in zip(vr.named_parameters(), grads[len(layout.params) :]):
        assert torch.equal(vr_grads[n], g)


def test_two_pass_leaves_ip_grads_unbound_and_frees_the_graph() -> None:
    ip, vr = _nets()
    layout = G.Layout(ip)
    buf = G.GradBuffers(layout, DEVICE)
    l_ip, l_vr = _losses(ip, vr, *_batch())
    G.two_pass(l_ip, l_vr, buf)
    assert all(p.grad is None for p in layout.params)
    with pytest.raises(RuntimeError):
        l_vr.backward()  # the second pass freed the graph: no third pass is possible


def test_gram_equals_per_block_dot_products() -> None:
    ip, vr = _nets()
    layout, g_ip, g_vr, _ = _two_pass(ip, vr)
    gram = G.gram(g_ip, g_vr, layout)
    a, v = g_ip.double(), g_vr.double()
    for i, b in enumerate(layout.blocks):
        sa, sv = a[b.offset : b.offset + b.numel], v[b.offset : b.offset + b.numel]
        assert gram["ip_ip"][i] == dot_approx(sa, sa)
        assert gram["vr_vr"][i] == dot_approx(sv, sv)
        assert gram["ip_vr"][i] == dot_approx(sa, sv)
    assert sum(gram["ip_vr"]) == dot_approx(a, v)
    assert all(isinstance(x, float) for x in gram["ip_ip"])


def test_merge_weights_matches_float64_formula_and_keeps_g_ip_exact() -> None:
    ip, vr = _nets()
    layout, g_ip, g_vr, _ = _two_pass(ip, vr)
    n = len(layout)
    assert torch.equal(G.merge_weights(g_ip, g_vr, layout, [1.0] * n, [0.0] * n), g_ip)
    w_ip = [1.0 + 0.1 * i for i in range(n)]
    w_vr = [0.003 * (i % 3) for i in range(n)]
    merged = G.merge_weights(g_ip, g_vr, layout, w_ip, w_vr)
    for i, b in enumerate(layout.blocks):
        s = slice(b.offset, b.offset + b.numel)
        ref = (g_ip[s].double() * w_ip[i] + g_vr[s].double() * w_vr[i]).float()
        assert torch.equal(merged[s], ref)
    with pytest.raises(ValueError, match=f"weights: expected {n} per block"):
        G.merge_weights(g_ip, g_vr, layout, w_ip[:-1], w_vr)


def test_buffers_point_grads_at_views_of_one_buffer() -> None:
    ip, vr = _nets()
    layout = G.Layout(ip)
    buf = G.GradBuffers(layout, DEVICE)
    buf.merged.copy_(torch.arange(layout.numel, dtype=torch.float32, device=DEVICE))
    buf.point(buf.merged)
    assert all(p.grad is not None and p.grad.data_ptr() != 0 for p in layout.params)
    flat = torch.cat([p.grad.reshape(-1) for p in layout.params])
    assert torch.equal(flat, buf.merged)
    buf.merged.add_(1.0)  # views, not copies
    assert torch.equal(layout.params[0].grad.reshape(-1)[:3], buf.merged[:3])
    buf.unbind()
    assert all(p.grad is None for p in layout.params)


class _Blocks(nn.Module):
    """A "network" whose parameters are flat blocks of the given sizes (to test every placement in the rows)."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.ps = nn.ParameterList([nn.Parameter(torch.zeros(k, device=DEVICE)) for k in sizes])


# Smaller and larger than a row, straddling rows, an empty block, a tail after the last whole row.
_ODD_SIZES = [1, G.ROW - 1, G.ROW, G.ROW + 1, 3 * G.ROW + 5, 0, 7, 2 * G.ROW, 5, 11 * G.ROW + 13]


@pytest.mark.parametrize("chunk", [G.ROW, 3 * G.ROW, 1 << 20], ids=["chunk=1row", "chunk=3rows", "chunk=big"])
def test_gram_and_merge_agree_with_the_per_block_definitions_for_any_block_sizes(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(G.CHUNK, DEVICE.type, chunk)
    layout = G.Layout(_Blocks(_ODD_SIZES))
    a, v = torch.randn(layout.numel, device=DEVICE), 300 * torch.randn(layout.numel, device=DEVICE)
    gram = G.gram(a, v, layout)
    w_ip = [1.0 + 0.25 * i for i in range(len(layout))]
    w_vr = [0.003 * (i % 4) - 0.002 for i in range(len(layout))]
    merged = G.merge_weights(a, v, layout, w_ip, w_vr)
    for i, b in enumerate(layout.blocks):
        sa, sv = a[b.offset : b.offset + b.numel].double(), v[b.offset : b.offset + b.numel].double()
        assert gram["ip_ip"][i] == dot_approx(sa, sa)
        assert gram["vr_vr"][i] == dot_approx(sv, sv)
        assert gram["ip_vr"][i] == dot_approx(sa, sv)
        assert torch.equal(merged[b.offset : b.offset + b.numel], (sa * w_ip[i] + sv * w_vr[i]).float())
    assert torch.equal(G.merge_weights(a, v, layout, [1.0] * len(layout), [0.0] * len(layout)), a)


def _aten_calls(fn: object) -> int:
    """How many ATen operators ``fn()`` calls itself (not those they call inside): what a GPU would launch."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()  # type: ignore[operator]
    return sum(1 for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None)


def _launches(n: int) -> tuple[int, int]:
    """Operators called by the Gram and by the merge for ``n`` blocks of ~32k elements in all, each straddling rows."""
    layout = G.Layout(_Blocks([(8 * G.ROW * 64) // n + 3] * n))
    a, v = torch.randn(layout.numel, device=DEVICE), torch.randn(layout.numel, device=DEVICE)
    out, w = torch.empty_like(a), [0.5] * n
    G.merge_weights(a, v, layout, w, w, out)  # builds the segments once
    return _aten_calls(lambda: G.gram_tensor(a, v, layout)), _aten_calls(lambda: G.merge_weights(a, v, layout, w, w, out))


def test_gram_and_merge_launch_the_same_operators_whatever_the_block_count() -> None:
    counts = {n: _launches(n) for n in (4, 64, 512)}
    assert counts[4] == counts[64] == counts[512], counts
    assert max(counts[512]) < 512 // 4  # a fixed few (views and slices included), not some per block


def test_finite_check_and_pixel_losses() -> None:
    assert G.all_finite(1.0, [2.0, 3.0])
    assert not G.all_finite(1.0, [float("nan")])
    assert not G.all_finite(float("inf"))
    y = torch.zeros(1, 1, 4, 4)
    assert float(G.pixel_loss(y + 2, y, "mse")) == 4.0
    assert float(G.pixel_loss(y + 2, y, "l1")) == 2.0
    with pytest.raises(ValueError, match="config.train.loss"):
        G.pixel_loss(y, y, "huber")
    with pytest.raises(ValueError, match="ip.scale"):
        G.pixel_loss(torch.zeros(1, 1, 2, 2), y)


def test_soft_target_cross_entropy_matches_manual_formula() -> None:
    logits = torch.randn(3, 4)
    target = F.softmax(torch.randn(3, 4), dim=1)
    manual = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(G.task_loss(logits, target), manual)


def test_the_gram_sums_each_block_in_a_fixed_order_without_index_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """No accumulation by atomics (``index_add_`` on CUDA): a repeated or resumed run gets the same bits, so the same gates."""
    layout = G.Layout(_Blocks(_ODD_SIZES))
    a, v = torch.randn(layout.numel, device=DEVICE), torch.randn(layout.numel, device=DEVICE)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("index_add_ accumulates with atomics on CUDA")

    monkeypatch.setattr(torch.Tensor, "index_add_", refuse)
    first = G.gram_tensor(a, v, layout)
    assert torch.equal(first, G.gram_tensor(a.clone(), v.clone(), layout))
