"""ToyWorld pretraining: the model definitions, the stages' folders (a few steps), seeding and the float16 export.

Quality is not checked here (a few steps learn nothing); the shipped weights' quality has its own test.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
import yaml
from diffusers import DDIMScheduler, MotionAdapter, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer

from snakemake_runs import snakemake

from vidmp3.workflow.config import load_config
from vidmp3.errors import InputError
from vidmp3.model.codec import PixelUnshuffleCodec
from vidmp3.model.presets import TextConditioning, load_components, model_spec
from vidmp3.model.processors import install_processors
from vidmp3.model.video_unet import build_video_unet, motion_widths
from vidmp3.toyworld import world
from vidmp3.toyworld.classifier import classify, load_classifier, train_classifier
from vidmp3.toyworld.pretrain.export import export_weights
from vidmp3.toyworld.pretrain.image import pretrain_image
from vidmp3.toyworld.pretrain.models import captions, toyworld_motion_adapter, toyworld_text_encoder, toyworld_unet2d
from vidmp3.toyworld.pretrain.motion import motion_statistics, pretrain_motion
from vidmp3.toyworld.pretrain.settings import ImageSettings, MotionSettings
from vidmp3.toyworld.text import toyworld_tokenizer

IMAGE = ImageSettings(steps=2, batch_size=4, images=16, samples_per_caption=1, sample_steps=2)
MOTION = MotionSettings(steps=2, batch_size=2, clips=3, sample_clips=2, sample_steps=2)
STAGE_FILES = ("loss.csv", "loss.png", "samples.png", "samples.json", "pretrain.json")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Classifier, image model, motion module and export, each from a couple of steps."""
    root = tmp_path_factory.mktemp("toyworld")
    train_classifier(seed=0, steps=2, out_dir=root / "classifier", eval_images=16, eval_clips=2)
    pretrain_image(IMAGE, root / "image", classifier_dir=root / "classifier")
    pretrain_motion(MOTION, root / "image", root / "motion", classifier_dir=root / "classifier")
    export_weights(root / "image", root / "motion", root / "classifier", root / "shipped")
    return root


def test_models_have_the_planned_size_and_make_a_video_unet():
    torch.manual_seed(0)
    unet, text_encoder, adapter = toyworld_unet2d(), toyworld_text_encoder(), toyworld_motion_adapter()
    assert 2.6e6 < sum(p.numel() for p in unet.parameters()) < 2.8e6
    assert (unet.config.in_channels, unet.config.out_channels, unet.config.sample_size) == (12, 12, 16)
    assert text_encoder.config.hidden_size == unet.config.cross_attention_dim == 64
    video = build_video_unet(unet, adapter)
    latents = torch.randn(1, 12, 4, 16, 16)
    text = TextConditioning(torch.randn(1, 8, 64), None)
    with torch.no_grad():
        # zero output projections: before training the video model is the image model on every frame
        per_frame = unet(latents[0].transpose(0, 1), 500, text.hidden_states.expand(4, -1, -1)).sample
        video_out = video(latents, 500, **text.unet_kwargs(4)).sample
        assert torch.allclose(video_out[0].transpose(0, 1), per_frame, atol=1e-5)
        for value_injection in (False, True):
            attention = install_processors(video, value_injection=value_injection)
            vectors = {width: torch.randn(4, width) for width in motion_widths(video)} if value_injection else None
            with attention.frames(4, vectors, 0.1):
                out = video(latents, 500, **text.unet_kwargs(4)).sample
            attention.restore()
            assert out.shape == latents.shape and torch.isfinite(out).all()


def test_image_stage_writes_a_loadable_base(pretrained):
    image = pretrained / "image"
    assert {p.name for p in image.iterdir()} == {"base", *STAGE_FILES}
    base = image / "base"
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", use_safetensors=True)
    assert unet.config.in_channels == 12
    CLIPTextModel.from_pretrained(base, subfolder="text_encoder", use_safetensors=True)
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    assert tokenizer("a red cube").input_ids == toyworld_tokenizer()("a red cube").input_ids
    assert DDIMScheduler.from_pretrained(base, subfolder="scheduler").config.prediction_type == "sample"
    assert PixelUnshuffleCodec.load_config(base, subfolder="vae")["_class_name"] == "PixelUnshuffleCodec"
    assert len((image / "loss.csv").read_text().splitlines()) == IMAGE.steps + 1
    samples = json.loads((image / "samples.json").read_text())
    assert samples["samples"] == len(captions()) * IMAGE.samples_per_caption
    assert all(0 <= samples[f"{name}_accuracy"] <= 1 for name in ("shape", "colour", "both"))
    record = json.loads((image / "pretrain.json").read_text())
    assert record["settings"]["steps"] == IMAGE.steps and record["held_out_seed"] == world.HELD_OUT_SEED


def test_motion_stage_writes_an_adapter_that_loads_with_the_base(pretrained):
    motion = pretrained / "motion"
    assert {p.name for p in motion.iterdir()} == {"motion_adapter", *STAGE_FILES}
    adapter = MotionAdapter.from_pretrained(motion / "motion_adapter", use_safetensors=True)
    trained = {name: value for name, value in adapter.state_dict().items() if name.endswith("proj_out.weight")}
    assert trained and any(value.abs().sum() > 0 for value in trained.values())  # moved off the zero start
    spec = model_spec("toyworld", base=str(pretrained / "image" / "base"), motion_adapter=str(motion / "motion_adapter"))
    components = load_components(spec, "cpu", torch.float32)
    assert components.scheduler_config["prediction_type"] == "sample"
    samples = json.loads((motion / "samples.json").read_text())
    assert samples["clips"] == MOTION.sample_clips
    assert samples["rendered"]["frame_step_l1"] > 0 and 0 <= samples["both_accuracy"] <= 1


def test_same_seed_same_weights_other_seed_other_weights(pretrained, tmp_path):
    pretrain_image(IMAGE, tmp_path / "again")
    pretrain_image(ImageSettings(**{**asdict(IMAGE), "seed": 1}), tmp_path / "other")
    first, again, other = (
        load_file(folder / "base" / "unet" / "diffusion_pytorch_model.safetensors")
        for folder in (pretrained / "image", tmp_path / "again", tmp_path / "other")
    )
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)
    assert "shape_accuracy" not in json.loads((tmp_path / "again" / "samples.json").read_text())  # no classifier given


def test_export_is_float16_in_the_preset_layout_and_loads(pretrained):
    shipped = pretrained / "shipped"
    for folder in ("base/unet", "base/text_encoder", "motion_adapter", "classifier"):
        for path in (shipped / folder).glob("*.safetensors"):
            with safe_open(path, "pt") as handle:
                dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}
            assert "F16" in dtypes and not dtypes & {"F32", "F64", "BF16"}, (path, dtypes)
    assert {p.name for p in (shipped / "base").iterdir()} == {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    record = json.loads((shipped / "pretrain.json").read_text())
    assert record["image"]["settings"]["steps"] == IMAGE.steps and record["motion"]["settings"]["steps"] == MOTION.steps
    assert record["classifier"]["accuracy"]["steps"] == 2
    assert "make toyworld-weights" in (shipped / "MODEL_CARD.md").read_text()

    spec = model_spec("toyworld", base=str(shipped / "base"), motion_adapter=str(shipped / "motion_adapter"))
    components = load_components(spec, "cpu", torch.float32)
    assert components.unet.dtype == torch.float32
    original = UNet2DConditionModel.from_pretrained(pretrained / "image" / "base", subfolder="unet")
    assert torch.allclose(components.unet.conv_in.weight, original.conv_in.weight, atol=1e-3)
    frames = world.render_images(8, seed=3)
    assert len(classify(load_classifier(shipped / "classifier"), frames.images).shapes) == 8


def test_motion_statistics_of_still_and_moving_clips():
    clip = world.render_toy_clip("cube", "red", seed=5, motion="large").frames
    still = np.repeat(clip[:1], len(clip), axis=0)
    assert motion_statistics(still[None]) == {"frame_step_l1": 0.0, "centroid_travel": 0.0}
    moving = motion_statistics(clip[None])
    assert moving["frame_step_l1"] > 0 and moving["centroid_travel"] > 0


def test_bad_settings_and_missing_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="seed 1000000 must be in"):
        pretrain_image(ImageSettings(seed=world.HELD_OUT_SEED), tmp_path / "image")
    with pytest.raises(InputError, match="caption_dropout"):
        pretrain_image(ImageSettings(caption_dropout=1.0), tmp_path / "image")
    with pytest.raises(InputError, match="no base/unet"):
        pretrain_motion(MOTION, tmp_path / "nowhere", tmp_path / "motion")
    with pytest.raises(InputError, match="is missing"):
        export_weights(tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path / "shipped")
    assert not (tmp_path / "image").exists() and not (tmp_path / "shipped").exists()


def test_settings_defaults_are_the_config_defaults(repo):
    pretrain = load_config({}, repo / "config" / "schemas")["toyworld"]["pretrain"]
    shared = {name: pretrain[name] for name in ("seed", "guidance_scale", "sample_steps")}
    assert asdict(ImageSettings()) == shared | pretrain["image"]
    assert asdict(MotionSettings()) == shared | pretrain["motion"]


@pytest.mark.workflow
def test_the_rules_pretrain_and_export_from_the_config(tmp_path, repo):
    """`snakemake results/toyworld/weights` with a few steps per stage: the rules, their helpers and scripts."""
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    pretrain = config["toyworld"]["pretrain"]
    pretrain.update(sample_steps=1, classifier={"steps": 1})
    pretrain["image"].update(steps=1, batch_size=2, images=4, samples_per_caption=1)
    pretrain["motion"].update(steps=1, batch_size=1, clips=2, sample_clips=1)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    for sheet in ("videos.tsv", "edits.tsv"):
        (tmp_path / "config" / sheet).write_text((repo / "config" / sheet).read_text())
    snakemake(tmp_path, "results/toyworld/weights")
    shipped = tmp_path / "results" / "toyworld" / "weights"
    record = json.loads((shipped / "pretrain.json").read_text())
    settings = (record["image"]["settings"]["images"], record["motion"]["settings"]["clips"])
    assert settings == (4, 2) and record["export"]["dtype"] == "float16"
    for stage in ("classifier", "image", "motion", "export"):
        assert (tmp_path / "results" / "logs" / "toyworld" / f"{stage}.log").is_file()
