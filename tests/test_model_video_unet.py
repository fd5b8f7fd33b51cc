"""Building the video UNet from a 2D UNet + motion adapter, and each method's exact trainable set."""

from __future__ import annotations

import pytest
import torch
from diffusers import MotionAdapter, UNetMotionModel

from vidmp3.errors import InputError
from vidmp3.model.tiny import tiny_motion_adapter, tiny_unet2d
from vidmp3.methods import METHODS
from vidmp3.model.video_unet import build_video_unet, motion_widths, set_trainable, trainable_unet_parameters

# The attention layers of the tiny models, written out by hand (not derived from the code under test).
SPATIAL = {
    "sd15": [
        "down_blocks.0.attentions.0.transformer_blocks.0",
        "mid_block.attentions.0.transformer_blocks.0",
        "up_blocks.1.attentions.0.transformer_blocks.0",
        "up_blocks.1.attentions.1.transformer_blocks.0",
    ],
    "sdxl": [
        "down_blocks.1.attentions.0.transformer_blocks.0",
        "down_blocks.1.attentions.0.transformer_blocks.1",
        "mid_block.attentions.0.transformer_blocks.0",
        "mid_block.attentions.0.transformer_blocks.1",
        "up_blocks.0.attentions.0.transformer_blocks.0",
        "up_blocks.0.attentions.0.transformer_blocks.1",
        "up_blocks.0.attentions.1.transformer_blocks.0",
        "up_blocks.0.attentions.1.transformer_blocks.1",
    ],
}
MOTION_MODULES = {
    "sd15": [
        "down_blocks.0.motion_modules.0",
        "down_blocks.1.motion_modules.0",
        "mid_block.motion_modules.0",
        "up_blocks.0.motion_modules.0",
        "up_blocks.0.motion_modules.1",
        "up_blocks.1.motion_modules.0",
        "up_blocks.1.motion_modules.1",
    ],
    "sdxl": [  # the SDXL adapter has no mid-block motion module
        "down_blocks.0.motion_modules.0",
        "down_blocks.1.motion_modules.0",
        "up_blocks.0.motion_modules.0",
        "up_blocks.0.motion_modules.1",
        "up_blocks.1.motion_modules.0",
        "up_blocks.1.motion_modules.1",
    ],
}
# norm, proj_in, proj_out (2 each) + one transformer block (norm1-3: 6, attn1 and attn2: 5 each, ff: 4)
MOTION_MODULE_TENSORS = 26


def spatial_queries(family: str) -> set[str]:
    return {f"{block}.attn{i}.to_q.weight" for block in SPATIAL[family] for i in (1, 2)}


def temporal(family: str, projections: list[str]) -> set[str]:
    return {
        f"{module}.transformer_blocks.0.attn{i}.{projection}"
        for module in MOTION_MODULES[family]
        for i in (1, 2)
        for projection in projections
    }


def expected_trainable(family: str, method: str) -> set[str]:
    if METHODS[method].whole_motion_modules:
        return spatial_queries(family) | {"whole motion modules"}
    if family == "sd15":
        return spatial_queries(family) | temporal(family, ["to_v.weight"])
    return spatial_queries(family) | temporal(
        family, ["to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias"]
    )


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def tiny_parts(request):
    torch.manual_seed(0)
    return request.param, tiny_unet2d(request.param), tiny_motion_adapter(request.param)


@pytest.fixture(scope="module")
def video_unet(tiny_parts):
    family, unet2d, adapter = tiny_parts
    return family, build_video_unet(unet2d, adapter)


def test_every_2d_weight_survives_the_conversion(tiny_parts, video_unet):
    family, unet2d, _ = tiny_parts
    _, unet = video_unet
    converted = unet.state_dict()
    for name, tensor in unet2d.state_dict().items():
        assert name in converted, name
        assert torch.equal(converted[name], tensor), name
    if family == "sdxl":
        assert any(name.startswith("add_embedding.") for name in unet2d.state_dict())


def test_the_sdxl_add_embedding_defect_is_what_the_fix_repairs():
    """diffusers' from_unet2d alone leaves SDXL's add_embedding at random values (the reason for the fix)."""
    torch.manual_seed(0)
    unet2d, adapter = tiny_unet2d("sdxl"), tiny_motion_adapter("sdxl")
    plain = UNetMotionModel.from_unet2d(unet2d, adapter)
    assert not torch.equal(plain.add_embedding.linear_1.weight, unet2d.add_embedding.linear_1.weight)


def test_motion_modules_come_from_the_adapter(tiny_parts, video_unet):
    _, _, adapter = tiny_parts
    _, unet = video_unet
    converted = unet.state_dict()
    for name, tensor in adapter.state_dict().items():
        assert torch.equal(converted[name], tensor), name


@pytest.mark.parametrize("method", sorted(METHODS))
def test_trainable_sets_are_exact(video_unet, method):
    family, unet = video_unet
    selected = set(set_trainable(unet, method))
    expected = expected_trainable(family, method)
    if METHODS[method].whole_motion_modules:
        expected.discard("whole motion modules")
        motion = {name for name, _ in unet.named_parameters() if ".motion_modules." in name}
        assert len(motion) == MOTION_MODULE_TENSORS * len(MOTION_MODULES[family])
        assert all(any(name.startswith(m + ".") for m in MOTION_MODULES[family]) for name in motion)
        expected |= motion
    assert selected == expected
    assert {name for name, p in unet.named_parameters() if p.requires_grad} == expected
    counts = {
        ("sd15", False): 8 + 14,
        ("sdxl", False): 16 + 60,
        ("sd15", True): 8 + 7 * MOTION_MODULE_TENSORS,
        ("sdxl", True): 16 + 6 * MOTION_MODULE_TENSORS,
    }
    assert len(selected) == counts[(family, METHODS[method].whole_motion_modules)]


def test_methods_without_motionguide(video_unet):
    _, unet = video_unet
    assert METHODS["no-motionguide"].guide_variant is None
    assert METHODS["tune-a-video"].guide_variant is None
    assert trainable_unet_parameters(unet, "no-motionguide").keys() == trainable_unet_parameters(unet, "vidmp3").keys()
    assert [METHODS[m].guide_variant for m in ("vidmp3", "corr-only", "depth-only", "concat")] == [
        "product",
        "corr",
        "depth",
        "concat",
    ]


def test_motion_widths(video_unet):
    _, unet = video_unet
    assert motion_widths(unet) == (32, 64)


def test_unknown_method_is_an_input_error(video_unet):
    _, unet = video_unet
    with pytest.raises(InputError, match="method 'lora' is unknown"):
        trainable_unet_parameters(unet, "lora")


def test_adapter_with_other_layers_per_block_is_refused(tiny_parts):
    _, unet2d, _ = tiny_parts
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=2,
        motion_num_attention_heads=2,
        motion_norm_num_groups=32,
        use_motion_mid_block=False,
    )
    with pytest.raises(InputError, match=r"motion layers per block \[2, 2\] do not match the UNet's .* \[1, 1\]"):
        build_video_unet(unet2d, adapter)


def test_adapter_with_other_channels_is_refused(tiny_parts):
    _, unet2d, _ = tiny_parts
    adapter = MotionAdapter(
        block_out_channels=(32, 96), motion_layers_per_block=1, motion_num_attention_heads=2, motion_norm_num_groups=32
    )
    with pytest.raises(InputError, match="block channels"):
        build_video_unet(unet2d, adapter)
