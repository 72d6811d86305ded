"""Degradations: validation messages, each kind's statistics, composition, and per-sample seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradprom_sidecar.data.degrade import build_degradation, sample_seed
from gradprom_sidecar.data.synthetic import generate
from gradprom_sidecar.evaluation.metrics import psnr


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "cfg,message",
    [
        (
            [{"kind": "gaussian", "sigma": 0.1, "clip": False}, {"kind": "gaussian", "sigma": 0, "clip": False}],
            r"^degradation\[1\]\.sigma: must be > 0$",
        ),
        ([{"kind": "gaussian"}], r"degradation\[0\]\.sigma: required"),
        ([{"kind": "gaussian", "sigma": 0.1}], r"degradation\[0\]\.clip: required"),  # the default is filled in by config.resolve
        ([{"kind": "gaussian", "sigma": "x", "clip": False}], r"degradation\[0\]\.sigma: expected a number"),
        ([{"kind": "gaussian", "sigma": 0.1, "clip": "yes"}], r"degradation\[0\]\.clip"),
        ([{"kind": "poisson", "peak": -1}], r"degradation\[0\]\.peak: must be > 0"),
        ([{"kind": "blur"}], r"degradation\[0\]\.kind: expected one of"),
        ([{"kind": "downsample", "scale": 3}], r"degradation\[0\]\.scale: expected 2 or 4"),
        ([{"kind": "downsample", "scale": 2, "sigma": 1}], r"degradation\[0\]\.sigma: unknown field"),
        ([42], r"degradation\[0\]: expected an object"),
        ({"kind": "gaussian"}, r"degradation: expected a list"),
    ],
)
def test_bad_config_names_index_and_field(cfg: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_degradation(cfg)  # type: ignore[arg-type]


def test_identity_when_empty() -> None:
    x = torch.rand(2, 1, 8, 8)
    for cfg in ([], None):
        d = build_degradation(cfg)
        assert d.scale == 1 and d(x, gen()) is x and d.seeded(x, [0, 1], 0) is x


def test_gaussian_is_unclipped_by_default() -> None:
    clean = torch.full((64, 1, 32, 32), 0.5)
    x = build_degradation([{"kind": "gaussian", "sigma": 0.3, "clip": False}])(clean, gen())
    noise = x - clean
    assert abs(float(noise.std()) - 0.3) < 0.005 and abs(float(noise.mean())) < 0.005
    assert float(x.min()) < 0.0 and float(x.max()) > 1.0
    xc = build_degradation([{"kind": "gaussian", "sigma": 0.3, "clip": True}])(clean, gen())
    assert float(xc.min()) == 0.0 and float(xc.max()) == 1.0


def test_noisy_psnr_on_synthetic_matches_calibration() -> None:
    clean = generate(1000, 32, 1, 4, seed=3).images
    x = build_degradation([{"kind": "gaussian", "sigma": 0.3, "clip": False}]).seeded(clean, range(1000), 7)
    # PSNR clamps x, which removes part of σ = 0.3's error (10.5 dB unclamped): ≈ 11.9 dB.
    assert 11.6 < float(psnr(x, clean).mean()) < 12.2


def test_poisson_statistics() -> None:
    clean = torch.full((32, 1, 32, 32), 0.25)
    peak = 40.0
    x = build_degradation([{"kind": "poisson", "peak": peak}])(clean, gen())
    counts = x * peak
    assert torch.allclose(counts, counts.round(), atol=1e-4)  # whole counts / peak
    assert abs(float(x.mean()) - 0.25) < 0.005
    assert abs(float(x.var()) - 0.25 / peak) < 0.0005  # Poisson: var = mean / peak


def test_downsample_bicubic_and_scale() -> None:
    clean = torch.rand(3, 2, 16, 16)
    d = build_degradation([{"kind": "downsample", "scale": 2}])
    out = d(clean, gen())
    assert d.scale == 2 and out.shape == (3, 2, 8, 8)
    ref = F.interpolate(clean, size=(8, 8), mode="bicubic", align_corners=False, antialias=True)
    assert torch.equal(out, ref)
    const = torch.full((1, 1, 16, 16), 0.4)
    assert torch.allclose(d(const, gen()), torch.full((1, 1, 8, 8), 0.4), atol=1e-6)
    chain = build_degradation(
        [{"kind": "downsample", "scale": 2}, {"kind": "downsample", "scale": 4}, {"kind": "gaussian", "sigma": 0.1, "clip": False}]
    )
    assert chain.scale == 8 and chain(torch.rand(1, 1, 32, 32), gen()).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match="not divisible by scale 4"):
        build_degradation([{"kind": "downsample", "scale": 4}])(torch.rand(1, 1, 10, 10), gen())


def test_composition_runs_in_list_order() -> None:
    clean = torch.rand(2, 1, 16, 16)
    noise_then_down = build_degradation([{"kind": "gaussian", "sigma": 0.2, "clip": False}, {"kind": "downsample", "scale": 2}])(
        clean, gen(1)
    )
    down_then_noise = build_degradation([{"kind": "downsample", "scale": 2}, {"kind": "gaussian", "sigma": 0.2, "clip": False}])(
        clean, gen(1)
    )
    # Downsampling averages the noise away when it comes second.
    small = F.interpolate(clean, size=(8, 8), mode="bicubic", antialias=True)
    assert float((noise_then_down - small).std()) < 0.6 * float((down_then_noise - small).std())


def test_training_call_follows_the_generator() -> None:
    d = build_degradation([{"kind": "gaussian", "sigma": 0.1, "clip": False}, {"kind": "poisson", "peak": 50}])
    clean = torch.rand(4, 1, 8, 8)
    assert torch.equal(d(clean, gen(5)), d(clean, gen(5)))
    assert not torch.equal(d(clean, gen(5)), d(clean, gen(6)))


def test_seeded_depends_only_on_seed_and_index() -> None:
    d = build_degradation([{"kind": "gaussian", "sigma": 0.2, "clip": False}, {"kind": "poisson", "peak": 30}])
    clean = torch.rand(6, 1, 8, 8)
    full = d.seeded(clean, range(6), seed=11)
    # Another batch composition and order: the same samples get the same inputs.
    part = d.seeded(clean[[4, 1]], [4, 1], seed=11)
    assert torch.equal(part[0], full[4]) and torch.equal(part[1], full[1])
    assert torch.equal(d.seeded(clean, range(6), seed=11), full)
    assert not torch.equal(d.seeded(clean, range(6), seed=12), full)
    same_image = clean[:1].expand(2, -1, -1, -1)
    two = d.seeded(same_image, [0, 1], seed=11)
    assert not torch.equal(two[0], two[1])  # different indices, different noise
    with pytest.raises(ValueError, match="2 indices for a batch of 6"):
        d.seeded(clean, [0, 1], seed=11)


def test_sample_seed_is_spread() -> None:
    seeds = {sample_seed(s, i) for s in range(4) for i in range(1000)}
    assert len(seeds) == 4000 and all(0 <= v < 2**63 for v in seeds)


def u8_images(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Images as an 8-bit source gives them: values k/255."""
    return torch.randint(0, 256, (n, c, h, w)).float() / 255


def pil_reference(img: torch.Tensor, fn: object) -> torch.Tensor:
    """One C×H×W image through a PIL operation, written out here independently of degrade.py."""
    from PIL import Image

    arr = (img * 255).round().byte().permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0], "L") if img.shape[0] == 1 else Image.fromarray(arr, "RGB")
    out = torch.from_numpy(np.array(fn(pil))).float() / 255  # type: ignore[operator]
    return out[None] if out.dim() == 2 else out.permute(2, 0, 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_downsample_pil_is_pils_bicubic_in_8_bits(channels: int) -> None:
    from PIL import Image

    clean = u8_images(2, channels, 32, 24)
    d = build_degradation([{"kind": "downsample", "scale": 4, "method": "pil"}])
    out = d(clean, gen())
    assert out.shape == (2, channels, 8, 6) and d.scale == 4
    for i in range(2):
        assert torch.equal(out[i], pil_reference(clean[i], lambda im: im.resize((6, 8), Image.Resampling.BICUBIC)))
    assert torch.equal(out, (out * 255).round() / 255)  # 8-bit values
    # torch's method: the same kernel family in float, close to PIL's but not equal.
    ours = build_degradation([{"kind": "downsample", "scale": 4, "method": "torch"}])(clean, gen())
    assert not torch.equal(ours, out) and float((ours - out).abs().mean()) < 4 / 255
    # Back to full size for scoring, by the same method.
    up = d.upsample(out, (32, 24))
    assert torch.equal(up[0], pil_reference(out[0], lambda im: im.resize((24, 32), Image.Resampling.BICUBIC)))
    assert torch.equal(
        build_degradation([{"kind": "downsample", "scale": 4}]).upsample(ours, (32, 24)),
        F.interpolate(ours, size=(32, 24), mode="bicubic", align_corners=False),
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_is_a_pil_round_trip_and_quality_matters(channels: int) -> None:
    import io

    from PIL import Image

    def round_trip(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=10)
        return Image.open(io.BytesIO(buf.getvalue())).convert(im.mode)

    clean = generate(2, 32, channels, 4, seed=3, start=0).images
    clean = (clean * 255).round() / 255
    q10 = build_degradation([{"kind": "jpeg", "quality": 10}])
    out = q10(clean, gen())
    assert out.shape == clean.shape
    for i in range(2):
        assert torch.equal(out[i], pil_reference(clean[i], round_trip))
    assert torch.equal(q10.seeded(clean, [0, 1], seed=1), q10.seeded(clean, [0, 1], seed=2))  # no randomness
    q90 = build_degradation([{"kind": "jpeg", "quality": 90}])(clean, gen())
    assert float(psnr(q90, clean).mean()) > float(psnr(out, clean).mean()) + 5


@pytest.mark.parametrize(
    "cfg,message",
    [
        ([{"kind": "jpeg", "quality": 0}], r"degradation\[0\]\.quality: expected an integer 1\.\.100"),
        ([{"kind": "jpeg", "quality": 10.5}], r"degradation\[0\]\.quality"),
        ([{"kind": "jpeg"}], r"degradation\[0\]\.quality: required"),
        ([{"kind": "jpeg", "quality": 10, "clip": True}], r"degradation\[0\]\.clip: unknown field"),
        ([{"kind": "downsample", "scale": 4, "method": "cv2"}], r"degradation\[0\]\.method: expected torch or pil"),
    ],
)
def test_bad_jpeg_and_method_name_index_and_field(cfg: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_degradation(cfg)  # type: ignore[arg-type]


def _estr_noisy(u8_hwc: np.ndarray, index: int, sigma: float) -> torch.Tensor:
    """ESTR's evaluation input from the rule, in plain torch: ToTensor, manual_seed(index), randn(C, H, W) * sigma, clamp."""
    img = torch.from_numpy(u8_hwc).permute(2, 0, 1).contiguous().float().div(255)  # torchvision's ToTensor
    torch.manual_seed(index)
    return torch.clamp(img + torch.randn(img.size()) * sigma, 0, 1)


def test_per_index_seeding_is_estrs_noise_bit_for_bit() -> None:
    from gradprom_sidecar.data.base import DataBundle, Split
    from gradprom_sidecar.data.feed import Feed
    from gradprom_sidecar.data.storage import to_unit

    rng = np.random.default_rng(3)
    u8 = rng.integers(0, 256, size=(7, 24, 20, 3), dtype=np.uint8)  # N×H×W×C, as PIL decodes
    stored = torch.from_numpy(u8).permute(0, 3, 1, 2).contiguous()
    deg = build_degradation([{"kind": "gaussian", "sigma": 0.1, "clip": True, "seeding": "per-index"}])
    want = torch.stack([_estr_noisy(u8[i], i, 0.1) for i in range(7)])
    # The batch position and the evaluation seed do not matter; the index in the split does.
    got = torch.cat([deg.seeded(to_unit(stored[a:b]), range(a, b), seed) for (a, b), seed in (((0, 3), 0), ((3, 7), 12345))])
    assert torch.equal(got, want)
    # The evaluation path of a session: the Feed's kept, seeded inputs.
    split = Split(stored, torch.zeros(7, dtype=torch.long), None, [f"{i}.png" for i in range(7)])
    bundle = DataBundle(split.subset(torch.arange(0)), split, split, 2, 3, 24, ["a", "b"], True, {"kind": "test"})
    feed = Feed(bundle, torch.device("cpu"), "auto", deg, eval_seed=99)
    assert torch.equal(torch.cat([feed.eval_degraded("val", 0, 4), feed.eval_degraded("val", 4, 7)]), want)
    # The default seeding draws other samples.
    other = build_degradation([{"kind": "gaussian", "sigma": 0.1, "clip": True}]).seeded(to_unit(stored), range(7), 0)
    assert not torch.equal(other, want)


def test_bad_seeding_is_named() -> None:
    with pytest.raises(ValueError, match=r"degradation\[0\]\.seeding: expected data-seed or per-index"):
        build_degradation([{"kind": "gaussian", "sigma": 0.1, "clip": True, "seeding": "global"}])
