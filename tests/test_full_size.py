"""The full-size SD-1.5 and SDXL video models, built on the meta device (shapes only, no weights, seconds):
processor placement, each method's trainable set against the paper, parameter counts, and the memory
of one 16x512x512 fine-tune step.

Expected numbers are worked out here from the published architectures (block widths, layers per block,
transformer depths), not read back from the code under test.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from vidmp3.model import full_size
from vidmp3.model.costs import GiB, finetune_weight_bytes, unet_flops, unet_step_activation_bytes
from vidmp3.model.processors import MotionGuideValueProcessor, SparseCausalAttnProcessor, install_processors
from vidmp3.model.video_unet import build_video_unet, motion_widths, set_trainable
from vidmp3.motionguide import MotionGuide

WIDTHS = {"sd15": (320, 640, 1280, 1280), "sdxl": (320, 640, 1280)}
# transformer blocks per attention layer in each down block (0: a block without attention); the mid block
# has one attention layer of the deepest width's depth; up blocks mirror the down blocks with 3 layers
DEPTHS = {"sd15": (1, 1, 1, 0), "sdxl": (0, 2, 10)}
MID_DEPTH = {"sd15": 1, "sdxl": 10}


def spatial_blocks(family: str) -> dict[str, int]:
    """Name -> width of every spatial BasicTransformerBlock, written out from the architecture."""
    widths, depths = WIDTHS[family], DEPTHS[family]
    blocks = {}
    for b, (width, depth) in enumerate(zip(widths, depths)):
        for layer in range(2):
            for d in range(depth):
                blocks[f"down_blocks.{b}.attentions.{layer}.transformer_blocks.{d}"] = width
    for d in range(MID_DEPTH[family]):
        blocks[f"mid_block.attentions.0.transformer_blocks.{d}"] = widths[-1]
    for u, (width, depth) in enumerate(zip(widths[::-1], depths[::-1])):
        for layer in range(3):
            for d in range(depth):
                blocks[f"up_blocks.{u}.attentions.{layer}.transformer_blocks.{d}"] = width
    return blocks


def motion_modules(family: str) -> dict[str, int]:
    """Name -> width of every motion module: 2 per down block, 3 per up block, none in the mid block
    (AnimateDiff v1-5 and sdxl-beta)."""
    widths = WIDTHS[family]
    modules = {f"down_blocks.{b}.motion_modules.{m}": w for b, w in enumerate(widths) for m in range(2)}
    modules.update({f"up_blocks.{u}.motion_modules.{m}": w for u, w in enumerate(widths[::-1]) for m in range(3)})
    return modules


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def video_unet(request):
    family = request.param
    with torch.device("meta"):
        unet2d, adapter = full_size.unet2d(family), full_size.motion_adapter(family)
        unet = build_video_unet(unet2d, adapter)
    return family, unet2d, adapter, unet


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts(video_unet):
    family, unet2d, adapter, unet = video_unet
    assert unet.device.type == "meta"
    # the published sizes of the SD-1.5 and SDXL base UNets
    assert count(unet2d) == {"sd15": 859_520_964, "sdxl": 2_567_463_684}[family]
    # a motion module: GroupNorm, proj_in/out (w x w + w), one transformer block of two bias-free
    # self-attentions with an output projection, three LayerNorms and a GEGLU feed-forward (inner 4w)
    # (its sinusoidal position encoding is a buffer, not a parameter)
    per_module = {
        w: 2 * w + 2 * (w * w + w) + 2 * (4 * w * w + w) + 3 * 2 * w + (w * 8 * w + 8 * w) + (4 * w * w + w)
        for w in (320, 640, 1280)
    }
    expected_adapter = sum(per_module[w] for w in motion_modules(family).values())
    assert count(adapter) == expected_adapter == {"sd15": 417_137_600, "sdxl": 236_779_200}[family]
    assert count(unet) == count(unet2d) + count(adapter)


def test_processor_placement(video_unet):
    family, _, _, unet = video_unet
    attention = install_processors(unet, value_injection=True)
    try:
        processors = unet.attn_processors
        sparse = {name for name, p in processors.items() if isinstance(p, SparseCausalAttnProcessor)}
        value = {name for name, p in processors.items() if isinstance(p, MotionGuideValueProcessor)}
        stock = {name for name, p in processors.items() if isinstance(p, AttnProcessor2_0)}
        assert sparse == {f"{block}.attn1.processor" for block in spatial_blocks(family)}
        assert value == {f"{m}.transformer_blocks.0.attn{i}.processor" for m in motion_modules(family) for i in (1, 2)}
        assert stock == {f"{block}.attn2.processor" for block in spatial_blocks(family)}  # cross-attention
        assert len(processors) == len(sparse) + len(value) + len(stock)
        assert (len(sparse), len(value)) == {"sd15": (16, 40), "sdxl": (70, 30)}[family]
    finally:
        attention.restore()
    attention = install_processors(unet, value_injection=False)  # no-motionguide, tune-a-video
    try:
        kinds = [type(p) for p in unet.attn_processors.values()]
        assert kinds.count(SparseCausalAttnProcessor) == len(sparse)
        assert kinds.count(AttnProcessor2_0) == len(stock) + len(value)
    finally:
        attention.restore()


def test_trainable_sets_against_the_paper(video_unet):
    """vidmp3 trains W_Q of spatial self- and cross-attention and W_V of temporal attention (SDXL: W_Q,
    W_K, W_V and the output projection of temporal attention), plus MotionGuide."""
    family, _, adapter, unet = video_unet
    selected = set_trainable(unet, "vidmp3")
    queries = {f"{block}.attn{i}.to_q.weight": w * w for block, w in spatial_blocks(family).items() for i in (1, 2)}
    projections = ["to_v.weight"] if family == "sd15" else ["to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight"]
    temporal = {
        f"{m}.transformer_blocks.0.attn{i}.{projection}": w * w
        for m, w in motion_modules(family).items()
        for i in (1, 2)
        for projection in projections
    }
    if family == "sdxl":
        temporal.update(
            {f"{m}.transformer_blocks.0.attn{i}.to_out.0.bias": w for m, w in motion_modules(family).items() for i in (1, 2)}
        )
    expected = {**queries, **temporal}
    assert {name: p.numel() for name, p in selected.items()} == expected
    assert len(selected) == {"sd15": 72, "sdxl": 290}[family]
    unet_part = sum(expected.values())
    assert unet_part == {"sd15": 62_668_800, "sdxl": 290_838_400}[family]
    with torch.device("meta"):
        motion_guide = MotionGuide(widths=motion_widths(unet))
    # the 62.86 M for SD-1.5 is the UNet part plus MotionGuide (phi_m, 193,408 parameters)
    assert count(motion_guide) == 3 * 64 * 9 + (64 + 16) * 64 * 9 + sum(64 * w + w for w in (320, 640, 1280))
    if family == "sd15":
        assert round((unet_part + count(motion_guide)) / 1e6, 2) == 62.86

    for ablation in ("no-motionguide", "corr-only", "depth-only", "concat"):  # the same UNet weights train
        assert set_trainable(unet, ablation).keys() == selected.keys()
    whole = set_trainable(unet, "tune-a-video")
    assert sum(p.numel() for p in whole.values()) == sum(queries.values()) + count(adapter)


def test_sd15_finetune_step_fits_24_gib():
    """Activations of one 16x512x512 bf16 fine-tune step of vidmp3 (counted on meta), with and without
    checkpointing, plus the weight states: the fit on a 24 GiB card needs the full checkpointing."""
    counts = {}
    for setting in ("none", "diffusers", "full"):
        with torch.device("meta"):
            unet = build_video_unet(full_size.unet2d("sd15"), full_size.motion_adapter("sd15")).to(torch.bfloat16)
        text = torch.zeros(1, full_size.MAX_TOKENS, 768, device="meta")
        counts[setting] = unet_step_activation_bytes(unet, "vidmp3", 16, 64, 64, text, setting)
    assert counts["none"] > counts["diffusers"] > 2 * counts["full"]
    assert 15 * GiB < counts["none"] < 30 * GiB  # the issue counted 23.0 GiB
    assert counts["full"] < 4 * GiB  # the issue counted about 3.9 GiB
    weights = finetune_weight_bytes(unet, set_trainable(unet, "vidmp3"), extra_trainable=193_408)
    assert weights["frozen_bf16"] == 2 * (1_276_658_564 - 62_668_800)
    assert weights["adam_fp32"] == 8 * 62_862_208
    assert counts["full"] + sum(weights.values()) < 24 * GiB
    assert counts["none"] + sum(weights.values()) > 24 * GiB


def test_sd15_flop_floors():
    """The floors of the issue: 19.63 TFLOP per UNet forward, 43.03 per fine-tune step at 16x512x512."""
    with torch.device("meta"):
        unet = build_video_unet(full_size.unet2d("sd15"), full_size.motion_adapter("sd15")).to(torch.bfloat16)
    text = torch.zeros(1, full_size.MAX_TOKENS, 768, device="meta")
    assert round(unet_flops(unet, "vidmp3", 16, 64, 64, text, train=False) / 1e12, 2) == 19.63
    assert round(unet_flops(unet, "vidmp3", 16, 64, 64, text, train=True) / 1e12, 2) == 43.03
