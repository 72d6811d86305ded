"""Metrics against hand-computed values, SSIM against scikit-image, classification and overlap scores against torchmetrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import needs

from gradprom_sidecar.evaluation.metrics import (
    SSIM_CONVENTION,
    accuracy,
    auc_ovr,
    balanced_accuracy,
    dice,
    iou,
    macro_f1,
    psnr,
    psnr_from_mse,
    ssim,
    topk_correct,
)

# ---------------------------------------------------------------- PSNR


def test_psnr_known_mse() -> None:
    y = torch.full((2, 1, 8, 8), 0.5)
    x = y.clone()
    x[0] += 0.1  # MSE 0.01 → 20 dB
    x[1, :, :4] += 0.2  # MSE 0.02 → 10·log10(50) dB
    assert psnr(x, y).tolist() == pytest.approx([20.0, 10 * math.log10(50)], abs=1e-4)


def test_psnr_clamps_the_estimate_and_handles_range() -> None:
    y = torch.full((1, 1, 4, 4), 0.5)
    # x = 2.5 is clamped to 1.0: MSE 0.25 → 6.0206 dB (unclamped would be 4 → -6.02 dB).
    assert float(psnr(y + 2.0, y)) == pytest.approx(10 * math.log10(4), abs=1e-4)
    assert float(psnr(y * 255 + 10, y * 255, data_range=255.0)) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-4)
    assert math.isinf(float(psnr(y, y)))
    with pytest.raises(ValueError, match="one shape"):
        psnr(y, y[:, :, :2])


# ---------------------------------------------------------------- SSIM


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    needs("skimage")
    from skimage.metrics import structural_similarity

    a_np, b_np = a.double().numpy(), b.double().numpy()
    return float(
        structural_similarity(a_np, b_np, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    )


def _test_pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    smooth = F.avg_pool2d(torch.rand(1, 3, 44, 52, generator=g), 3, 1, 1)
    noisy = (smooth + 0.1 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
    blurred = F.avg_pool2d(smooth, 5, 1, 2)
    gray = torch.rand(1, 1, 32, 32, generator=g)
    return [(noisy, smooth), (blurred, smooth), (gray, gray.flip(-1)), (gray * 0.8 + 0.1, gray)]


@pytest.mark.parametrize("pair", range(4))
def test_ssim_matches_skimage(pair: int) -> None:
    x, y = _test_pairs()[pair]
    ours = float(ssim(x, y))
    assert ours == pytest.approx(_skimage_ssim(x[0], y[0]), abs=1e-3)


def test_ssim_batch_identity_and_convention() -> None:
    x, y = _test_pairs()[0]
    batch = ssim(torch.cat([x, y]), torch.cat([y, y]))
    assert batch.shape == (2,) and float(batch[1]) == pytest.approx(1.0, abs=1e-6) and float(batch[0]) < 0.99
    assert "11x11" in SSIM_CONVENTION and "1.5" in SSIM_CONVENTION
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


# ---------------------------------------------------------------- classification


def test_accuracy_from_logits_or_predictions() -> None:
    labels = torch.tensor([0, 1, 2, 1])
    logits = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 3, 0], [0, 0.5, 0.1]])
    assert accuracy(logits, labels) == pytest.approx(0.75)
    assert accuracy(torch.tensor([0, 0, 2, 1]), labels) == pytest.approx(0.75)


def test_balanced_accuracy_and_macro_f1_hand_values() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    pred = torch.tensor([0, 0, 1, 1])
    # Recall: class 0 2/3, class 1 1/1 → 5/6.
    assert balanced_accuracy(pred, labels) == pytest.approx(5 / 6)
    # F1: class 0 = 2·2/(3+2) = 0.8; class 1 = 2·1/(1+2) = 2/3 → 0.7333.
    assert macro_f1(pred, labels) == pytest.approx((0.8 + 2 / 3) / 2)
    # A predicted class that never occurs counts with F1 = 0; balanced accuracy ignores it.
    pred2 = torch.tensor([0, 0, 2, 1])
    assert macro_f1(pred2, labels) == pytest.approx((0.8 + 1.0 + 0.0) / 3)
    assert balanced_accuracy(pred2, labels) == pytest.approx((2 / 3 + 1) / 2)


def test_auc_rank_statistic_with_ties() -> None:
    # Binary, class 1 scores: positives {0.9, 0.5}, negatives {0.5, 0.1}: pairs won 1, 1, ½ (tie), 1 → 3.5/4.
    s1 = torch.tensor([0.9, 0.5, 0.5, 0.1])
    probs = torch.stack([1 - s1, s1], 1)
    labels = torch.tensor([1, 1, 0, 0])
    assert auc_ovr(probs, labels) == pytest.approx(0.875)  # class 0 mirrors class 1


def test_auc_skips_absent_classes() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 0, 1, 1])  # class 2 absent: skipped
    # Class 0: positives {0.7, 0.6} vs negatives {0.2, 0.5}: 4/4. Class 1: {0.7, 0.4} vs {0.2, 0.3}: 4/4.
    assert auc_ovr(probs, labels) == pytest.approx(1.0)
    probs[3] = torch.tensor([0.65, 0.25, 0.1])
    # Class 0: 0.7, 0.6 vs 0.2, 0.65 → 1 + 1 + 1 + 0 = 3/4; class 1: 0.7, 0.25 vs 0.2, 0.3 → 1+1+1+0 = 3/4.
    assert auc_ovr(probs, labels) == pytest.approx(0.75)
    assert math.isnan(auc_ovr(probs, torch.zeros(4, dtype=torch.long)))


def test_auc_matches_pairwise_count() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (60, 3), generator=g).double()  # many ties
    labels = torch.randint(0, 3, (60,), generator=g)
    expected = []
    for c in range(3):
        pos, neg = scores[labels == c, c], scores[labels != c, c]
        diff = pos[:, None] - neg[None, :]
        expected.append(float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean()))
    assert auc_ovr(scores, labels) == pytest.approx(float(np.mean(expected)))


# ---------------------------------------------------------------- segmentation


def test_dice_and_iou_hand_values() -> None:
    truth = torch.zeros(1, 4, 4, dtype=torch.long)
    truth[0, :2, :2] = 1  # 4 pixels
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    pred[0, :2, :3] = 1  # 6 pixels, 4 shared
    assert dice(pred, truth, 2).tolist() == pytest.approx([2 * 4 / 10])
    assert iou(pred, truth, 2).tolist() == pytest.approx([4 / 6])
    logits = F.one_hot(pred, 2).permute(0, 3, 1, 2).float()
    assert dice(logits, truth, 2).tolist() == pytest.approx([0.8])


def test_empty_mask_conventions_and_class_average() -> None:
    empty = torch.zeros(1, 4, 4, dtype=torch.long)
    some = empty.clone()
    some[0, 0, 0] = 1
    assert dice(empty, empty, 2).tolist() == [1.0] and iou(empty, empty, 2).tolist() == [1.0]
    assert dice(some, empty, 2).tolist() == [0.0] and dice(empty, some, 2).tolist() == [0.0]
    # Three classes: class 1 perfect, class 2 absent in both (1.0), class 3 missed (0.0).
    truth = torch.tensor([[[1, 1], [3, 0]]])
    pred = torch.tensor([[[1, 1], [0, 0]]])
    assert dice(pred, truth, 4).tolist() == pytest.approx([2 / 3])
    batch = dice(torch.cat([pred, empty[:, :2, :2]]), torch.cat([truth, empty[:, :2, :2]]), 4)
    assert batch.shape == (2,) and batch.tolist() == pytest.approx([2 / 3, 1.0])
    with pytest.raises(ValueError, match="num_classes"):
        dice(pred, truth, 1)


# ---------------------------------------------------------------- conventions (ESTR's)


def _pytorch_ssim_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch_ssim's convention written out with explicit loops: zero-padded 11x11 Gaussian windows, mean over the map."""
    t = np.arange(11) - 5
    g = np.exp(-(t**2) / (2 * 1.5**2))
    win = np.outer(g, g) / g.sum() ** 2
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(a.shape[0]):
        pa, pb = np.pad(a[ch], 5), np.pad(b[ch], 5)
        for i in range(a.shape[1]):
            for j in range(a.shape[2]):
                wa, wb = pa[i : i + 11, j : j + 11], pb[i : i + 11, j : j + 11]
                ma, mb = (win * wa).sum(), (win * wb).sum()
                va, vb = (win * wa * wa).sum() - ma**2, (win * wb * wb).sum() - mb**2
                cov = (win * wa * wb).sum() - ma * mb
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


@pytest.mark.parametrize("pair", range(4))
def test_ssim_pytorch_ssim_convention_matches_a_hand_computation(pair: int) -> None:
    x, y = _test_pairs()[pair]
    x, y = x[..., :20, :23], y[..., :20, :23]  # small: the hand computation loops over every pixel
    ours = float(ssim(x, y, convention="pytorch_ssim"))
    assert ours == pytest.approx(_pytorch_ssim_by_hand(x[0].double().numpy(), y[0].double().numpy()), abs=1e-6)


def test_the_two_ssim_conventions_differ_and_small_images_need_padding() -> None:
    x, y = _test_pairs()[0]
    gap = abs(float(ssim(x, y)) - float(ssim(x, y, convention="pytorch_ssim")))
    assert gap > 0.005  # same window and constants, other border handling and averaging
    assert ssim(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), convention="pytorch_ssim").shape == (2,)
    with pytest.raises(ValueError, match="SSIM convention"):
        ssim(x, y, convention="matlab")


def test_psnr_per_batch_is_estrs() -> None:
    mse = torch.tensor([0.01, 0.04, 0.001, 0.002, 0.003])
    per_image = sum(10 * math.log10(1 / m) for m in mse.tolist()) / 5
    assert psnr_from_mse(mse, "image", 2) == pytest.approx(per_image)
    # Batches of 2, 2, 1 images: 10·log10(1 / (batch MSE + 1e-9)), weighted by batch size.
    batches = [(2, 0.025), (2, 0.0015), (1, 0.003)]
    assert psnr_from_mse(mse, "batch", 2) == pytest.approx(sum(n * 10 * math.log10(1 / (m + 1e-9)) for n, m in batches) / 5)
    assert psnr_from_mse(mse, "batch", 5) == pytest.approx(10 * math.log10(1 / (float(mse.mean()) + 1e-9)))
    assert psnr_from_mse(mse, "batch", 1) == pytest.approx(per_image, abs=1e-5)
    assert math.isnan(psnr_from_mse(torch.zeros(0), "batch", 2))
    with pytest.raises(ValueError, match="PSNR convention"):
        psnr_from_mse(mse, "dataset", 2)


def test_topk_correct() -> None:
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([2, 0, 0])
    assert topk_correct(logits, labels, 1).tolist() == [False, True, False]
    assert topk_correct(logits, labels, 2).tolist() == [True, True, False]
    assert topk_correct(logits, labels, 3).all()


# ---------------------------------------------------------------- against torchmetrics (a test-only requirement)

# torchmetrics is a test-only requirement (python/requirements.txt); a bare GPU machine may lack it: these tests then skip.


def _tm() -> tuple[Any, Any]:
    """torchmetrics' classification and segmentation functions, or a skip naming it."""
    needs("torchmetrics")
    import torchmetrics.functional.classification as tm_cls
    import torchmetrics.functional.segmentation as tm_seg

    return tm_cls, tm_seg


def _class_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    """(name, N×K scores, N labels, K): random sets, and the edge cases (a class never true, one never predicted, ties, one sample)."""
    g = torch.Generator().manual_seed(7)
    cases = []
    for n, k in ((50, 3), (200, 5), (17, 7)):
        cases.append((f"random{n}x{k}", torch.randn(n, k, generator=g), torch.randint(0, k, (n,), generator=g), k))
    labels = torch.tensor([0, 0, 1, 1, 1, 0, 1, 0])  # class 2 never true
    scores = torch.randn(8, 3, generator=g)
    scores[[0, 3], 2] += 10  # ... but predicted twice
    cases.append(("class-never-true", scores, labels, 3))
    scores = torch.randn(9, 3, generator=g)
    scores[:, 1] -= 10  # class 1 never predicted
    cases.append(("class-never-predicted", scores, torch.tensor([0, 1, 2, 1, 0, 2, 1, 1, 0]), 3))
    ties = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.1, 0.9]])
    cases.append(("tied-scores", ties, torch.tensor([0, 1, 0, 1, 1, 0]), 2))
    cases.append(("all-correct", torch.eye(4).repeat(3, 1), torch.arange(4).repeat(3), 4))
    return cases


CLASS_CASES = _class_cases()


@pytest.mark.parametrize("name,scores,labels,k", CLASS_CASES, ids=[c[0] for c in CLASS_CASES])
def test_classification_metrics_match_torchmetrics(name: str, scores: torch.Tensor, labels: torch.Tensor, k: int) -> None:
    tm_cls, _ = _tm()
    pred = scores.argmax(dim=1)
    assert accuracy(scores, labels) == pytest.approx(float(tm_cls.multiclass_accuracy(pred, labels, k, average="micro")), abs=1e-6)
    # balanced accuracy: torchmetrics' per-class recall, averaged over the classes present in the labels
    recall = tm_cls.multiclass_recall(pred, labels, k, average="none")
    present = torch.bincount(labels, minlength=k) > 0
    assert balanced_accuracy(scores, labels) == pytest.approx(float(recall[present].mean()), abs=1e-6)
    # macro-F1: torchmetrics leaves out classes neither true nor predicted, as ours does
    assert macro_f1(scores, labels) == pytest.approx(float(tm_cls.multiclass_f1_score(pred, labels, k, average="macro")), abs=1e-6)
    # one-vs-rest AUC: per class from torchmetrics, averaged over classes with positives and negatives
    if k > 1:
        probs = scores.softmax(dim=1)
        per_class = tm_cls.multiclass_auroc(probs, labels, k, average="none", thresholds=None)
        counts = torch.bincount(labels, minlength=k)
        usable = (counts > 0) & (counts < len(labels))
        assert auc_ovr(probs, labels) == pytest.approx(float(per_class[usable].mean()), abs=1e-6)


def _mask_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    g = torch.Generator().manual_seed(3)
    cases = [
        (f"random-k{k}", torch.randint(0, k, (6, 12, 12), generator=g), torch.randint(0, k, (6, 12, 12), generator=g), k) for k in (2, 4)
    ]
    true = torch.zeros(3, 8, 8, dtype=torch.long)
    true[0, 2:5, 2:5] = 1
    true[1, :, :4] = 2
    pred = true.clone()
    pred[0, 2:4, 2:6] = 1
    pred[1, 0, :] = 1  # class 1 predicted where it is not true
    cases.append(("edge-empty-classes", pred, true, 3))  # image 2: every class empty in both
    cases.append(("edge-perfect", true.clone(), true, 3))
    return cases


MASK_CASES = _mask_cases()


@pytest.mark.parametrize("name,pred,true,k", MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_dice_and_iou_match_torchmetrics(name: str, pred: torch.Tensor, true: torch.Tensor, k: int) -> None:
    """Per image and foreground class against torchmetrics; a class empty in both is ours by convention (1.0), checked apart."""
    _, tm_seg = _tm()
    tm_dice = tm_seg.dice_score(pred, true, k, include_background=False, average="none", input_format="index")  # N×(K-1)
    tm_iou = tm_seg.mean_iou(pred, true, k, include_background=False, per_class=True, input_format="index")  # N×(K-1)
    both_empty = torch.stack([((pred == c) | (true == c)).sum(dim=(1, 2)) == 0 for c in range(1, k)], dim=1)
    expect_dice = torch.where(both_empty, torch.ones_like(tm_dice), tm_dice.nan_to_num(0.0)).mean(dim=1)
    expect_iou = torch.where(both_empty, torch.ones_like(tm_iou), tm_iou.nan_to_num(0.0)).mean(dim=1)
    assert torch.allclose(dice(pred, true, k).double(), expect_dice.double(), atol=1e-6)
    assert torch.allclose(iou(pred, true, k).double(), expect_iou.double(), atol=1e-6)
    if name == "edge-empty-classes":
        assert bool(both_empty[2].all()) and float(dice(pred, true, k)[2]) == 1.0
