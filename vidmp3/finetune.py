"""Fine-tune the video model on one source video (paper eq. 5), and load the result back.

Loss: the MSE of the UNet's prediction (noise for SD-1.5/SDXL as in the paper; the clean latents for
ToyWorld, whose scheduler says `sample`) on the latents of the video's sampled frames, conditioned on
the source prompt, with MotionGuide fed the video's guide (C ⊙ D, or an ablation's input) and its vectors
injected into temporal attention values with weight lambda. One run per video serves all of its
edits. The weights folder holds only what was trained plus the resolved config, never a copy of
the base model:

    trainable.safetensors    the method's trainable UNet parameters, by UNet parameter name
    motion_guide.safetensors MotionGuide (methods that use it)
    config.json              model spec, method, fine-tune settings, MotionGuide config, video facts
    loss.csv, loss.png       the loss curve
    guide_effect.{csv,json,png}  MotionGuide methods: per temporal layer, lambda * ||phi|| / ||z|| and the
                             change of the layer's output without the guide (vidmp3.guide_effect)
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from matplotlib.figure import Figure
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.guide_effect import measure_guide_effect, write_guide_effect
from vidmp3.model.presets import Components, ModelSpec, load_components
from vidmp3.model.processors import install_processors
from vidmp3.methods import get_method
from vidmp3.model.codec import codec_factor
from vidmp3.model.video_unet import motion_slots, set_trainable, trainable_unet_parameters
from vidmp3.motionguide import MotionGuide, guide_input, motion_guide_config
from vidmp3.store import read_array

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
"""What a base model's UNet predicts (its scheduler config); the loss regresses the same quantity."""

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtypes; the weights themselves stay float32 while training."""


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "vidmp3"
    steps: int = 100
    learning_rate: float = 5e-4
    guide_scale: float = 0.1  # lambda: 0.1 for large motion, 0.05 for small (the sheet's motion class)
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # autocast dtype: fp32 (off), bf16, fp16 (with gradient scaling)
    gradient_checkpointing: bool = False
    motion_guide_hidden: int = 64  # MotionGuide trunk channels
    guide_learning_rate: float | None = None  # MotionGuide's Adam rate; None: the method's (vidmp3.methods)


def _check_config(config: FinetuneConfig) -> torch.device:
    get_method(config.method)
    if config.steps < 1:
        raise InputError(f"finetune steps must be positive, got {config.steps}")
    if not config.learning_rate > 0:
        raise InputError(f"finetune learning_rate must be positive, got {config.learning_rate}")
    if config.guide_learning_rate is not None and not config.guide_learning_rate > 0:
        raise InputError(f"finetune guide_learning_rate must be positive or None, got {config.guide_learning_rate}")
    if config.precision not in PRECISIONS:
        raise InputError(f"finetune precision {config.precision!r} is unknown; expected one of {sorted(PRECISIONS)}")
    try:
        device = torch.device(config.device)
    except RuntimeError:
        raise InputError(f"finetune device {config.device!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"finetune device {config.device!r}: CUDA is not available on this machine")
    return device


def _guide_learning_rate(config: FinetuneConfig) -> float:
    """The config's MotionGuide rate, else the method's own, else the fine-tuning rate (the paper)."""
    return config.guide_learning_rate or get_method(config.method).guide_learning_rate or config.learning_rate


def _check_inputs(
    frames: np.ndarray, guide: np.ndarray | None, alpha: np.ndarray | None, method: str
) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width, _ = frames.shape
    if height % 8 or width % 8:
        raise InputError(f"frames must have a height and width that are multiples of 8, got {height}x{width}")
    variant = get_method(method).guide_variant
    if variant is None:
        if guide is not None or alpha is not None:
            raise InputError(f"method {method!r} uses no MotionGuide; it takes no guide or alpha")
        return
    if guide is None or alpha is None:
        raise InputError(f"method {method!r} needs the MotionGuide input (guide) and alpha")
    channels = MotionGuide.in_channels(variant)
    if guide.ndim != 4 or guide.shape[1] != channels:
        raise InputError(
            f"guide must be (N, {channels}, H, W) for method {method!r} (variant {variant!r}), got {guide.shape}"
        )
    if guide.shape[0] != num_frames:
        raise InputError(f"guide has {guide.shape[0]} frames, the clip has {num_frames}")
    if alpha.shape != (num_frames,):
        raise InputError(f"alpha must have shape ({num_frames},) to match the frames, got {alpha.shape}")


def _write_loss_curve(folder: Path, losses: list[tuple[int, int, float]], title: str, prediction_type: str) -> None:
    with open(folder / "loss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "timestep", "loss"])
        writer.writerows(losses)
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    steps = np.array([step for step, _, _ in losses])
    values = np.array([loss for _, _, loss in losses])
    window = max(1, min(10, len(values) // 5))  # the loss depends on the sampled timestep: show a running mean too
    running = np.convolve(values, np.ones(window) / window, mode="valid")
    axes.plot(steps, values, lw=0.8, alpha=0.4, label="per step")
    axes.plot(steps[window - 1 :], running, lw=1.5, label=f"mean of {window}")
    axes.set_xlabel("step")
    axes.set_ylabel(f"{prediction_type} MSE")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(folder / "loss.png", dpi=100)


def _target(scheduler: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """What the UNet learned to predict: the noise (SD-1.5, SDXL: the paper's eq. 5), the clean latents
    (ToyWorld) or the velocity."""
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return latents
    return scheduler.get_velocity(latents, noise, timestep)


def _state_dict_for_saving(parameters: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().float().cpu().contiguous() for name, parameter in parameters.items()}


def finetune(
    frames: np.ndarray,
    guide: np.ndarray | None,
    alpha: np.ndarray | None,
    prompt: str,
    spec: ModelSpec,
    config: FinetuneConfig,
    out_dir: str | os.PathLike,
) -> None:
    """Fine-tune `config.method` on one video and write the weights folder `out_dir` (atomically).

    frames: uint8 (N, H, W, 3). guide: the MotionGuide input for the method's variant (N, Cin, H', W')
    (vidmp3: C ⊙ D) and alpha (N,) the subject's share of pixels; both None for methods without
    MotionGuide. Same inputs, config and seed give the same weights (on the same device).
    """
    device = _check_config(config)
    _check_inputs(frames, guide, alpha, config.method)
    method = get_method(config.method)
    num_frames, height, width, _ = frames.shape

    components = load_components(spec, device, torch.float32)
    unet = components.unet
    max_frames = unet.config.motion_max_seq_length
    if num_frames > max_frames:
        raise InputError(f"clip has {num_frames} frames; the motion adapter handles at most {max_frames}")
    scheduler = DDPMScheduler.from_config(components.scheduler_config)
    prediction_type = scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise InputError(
            f"model base {spec.base}: prediction type {prediction_type!r} is unknown; "
            f"expected one of {PREDICTION_TYPES}"
        )

    trainable = set_trainable(unet, config.method)
    motion_guide = None
    if method.guide_variant is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            motion_guide = MotionGuide(**motion_guide_config(
                method.guide_variant, method.guide_layout, motion_slots(unet).values(), codec_factor(components.vae),
                config.motion_guide_hidden, coarse=method.guide_lowest_only,
            ))
        motion_guide.to(device).train()
        guide_tensor = torch.from_numpy(np.asarray(guide, dtype=np.float32)).to(device)
        alpha_tensor = torch.from_numpy(np.asarray(alpha, dtype=np.float32)).to(device)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()

    parameters = list(trainable.values()) + (list(motion_guide.parameters()) if motion_guide else [])
    groups = [{"params": list(trainable.values())}]
    if motion_guide is not None:
        groups.append({"params": list(motion_guide.parameters()), "lr": _guide_learning_rate(config)})
    optimizer = torch.optim.Adam(groups, lr=config.learning_rate)
    autocast_dtype = PRECISIONS[config.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    generator = torch.Generator().manual_seed(config.seed)

    latents = components.encode_frames(frames)
    text = components.encode_prompt([prompt], height, width)
    video_attention = install_processors(unet, value_injection=motion_guide is not None)
    losses = []
    try:
        for step in tqdm(range(config.steps), desc=f"fine-tune {config.method}"):
            timestep = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator).to(device)
            noise = torch.randn(latents.shape, generator=generator).to(device)
            noisy = scheduler.add_noise(latents, noise, timestep)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=config.precision != "fp32"):
                vectors = motion_guide(guide_tensor, alpha_tensor) if motion_guide else None
            with video_attention.frames(num_frames, vectors, config.guide_scale):
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=config.precision != "fp32"):
                    prediction = unet(noisy, timestep, **text.unet_kwargs(num_frames)).sample
                loss = F.mse_loss(prediction.float(), _target(scheduler, latents, noise, timestep))
                if not torch.isfinite(loss):
                    raise RuntimeError(f"fine-tuning loss is {loss.item()} at step {step}; no weights written")
                scaler.scale(loss).backward()  # inside: checkpointed layers rerun their processors here
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            losses.append((step, int(timestep.item()), float(loss.item())))
        effect = None
        if motion_guide is not None:
            unet.eval()
            motion_guide.eval()
            with torch.no_grad():
                vectors = motion_guide(guide_tensor, alpha_tensor)
            effect = measure_guide_effect(
                unet, video_attention, vectors, config.guide_scale, latents, text.unet_kwargs(num_frames), scheduler,
                config.seed, autocast_dtype if config.precision != "fp32" else None,
            )
    finally:
        video_attention.restore()

    resolved = {
        "model": asdict(spec),
        "finetune": asdict(config),
        "motion_guide": dict(motion_guide.config) if motion_guide else None,
        "video": {"frames": num_frames, "height": height, "width": width, "prompt": prompt},
        "trainable": {
            "unet_tensors": len(trainable),
            "motion_guide_tensors": len(list(motion_guide.parameters())) if motion_guide else 0,
            "parameters": sum(p.numel() for p in parameters),
            "motion_guide_learning_rate": groups[-1]["lr"] if motion_guide else None,
        },
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        save_file(_state_dict_for_saving(trainable), tmp / "trainable.safetensors", metadata={"method": config.method})
        if motion_guide is not None:
            save_file(_state_dict_for_saving(dict(motion_guide.named_parameters())), tmp / "motion_guide.safetensors")
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2))
        _write_loss_curve(tmp, losses, f"{config.method}: {prompt}", prediction_type)
        if effect is not None:
            write_guide_effect(tmp, effect, f"{config.method}: {prompt}")


def finetune_video(
    priors: str | os.PathLike, prompt: str, spec: ModelSpec, config: FinetuneConfig, out_dir: str | os.PathLike
) -> None:
    """`finetune` on a video's priors group (`results/priors/{video}.zarr`): its `frames`, and for
    MotionGuide methods the input of the method's variant built from `corr` and `depth` (the same
    way editing builds it), with `alpha`."""
    priors = Path(priors)
    frames, _ = read_array(priors / "frames")
    variant = get_method(config.method).guide_variant
    guide = alpha = None
    if variant is not None:
        corr, _ = read_array(priors / "corr")
        depth, _ = read_array(priors / "depth")
        if not (corr.shape[0] == depth.shape[0] == frames.shape[0]):
            raise InputError(
                f"{priors}: priors disagree on the frame count: frames {frames.shape[0]}, "
                f"corr {corr.shape[0]}, depth {depth.shape[0]}"
            )
        guide = guide_input(corr, depth, variant)
        alpha, _ = read_array(priors / "alpha")
    finetune(frames, guide, alpha, prompt, spec, config, out_dir)


@dataclass
class Finetuned:
    """A fine-tuned video model: base components with the trained weights applied."""

    components: Components
    motion_guide: MotionGuide | None
    method: str
    guide_scale: float
    config: dict


def load_finetuned(weights_dir: str | os.PathLike, device: str | torch.device, dtype: torch.dtype) -> Finetuned:
    """Load the base model recorded in `weights_dir/config.json` and apply the trained weights.

    The processors are not installed: the caller does `install_processors(finetuned.components.unet,
    value_injection=finetuned.motion_guide is not None)` and feeds `motion_guide(guide, alpha)` with
    `guide_scale` through `VideoAttention.frames(...)`.
    """
    weights_dir = Path(weights_dir)
    config_path = weights_dir / "config.json"
    if not config_path.is_file():
        raise InputError(f"{weights_dir}: not a fine-tuned weights folder (no config.json)")
    config = json.loads(config_path.read_text())
    method = config["finetune"]["method"]
    components = load_components(ModelSpec(**config["model"]), device, dtype)
    parameters = trainable_unet_parameters(components.unet, method)
    trained = load_file(weights_dir / "trainable.safetensors")
    if set(trained) != set(parameters):
        missing, unexpected = sorted(set(parameters) - set(trained)), sorted(set(trained) - set(parameters))
        raise InputError(
            f"{weights_dir}/trainable.safetensors does not fit method {method!r} on this model: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(trained[name])
    motion_guide = None
    if config["motion_guide"] is not None:
        motion_guide = MotionGuide(**config["motion_guide"])
        motion_guide.load_state_dict(load_file(weights_dir / "motion_guide.safetensors"))
        motion_guide.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return Finetuned(components, motion_guide, method, config["finetune"]["guide_scale"], config)
