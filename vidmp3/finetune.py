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
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vidmp3.atomic import atomic_path
from vidmp3.errors import InputError
from vidmp3.guide_effect import measure_guide_effect, write_guide_effect
from vidmp3.model.codec import codec_factor
from vidmp3.model.presets import Components, ModelSpec, configure_device, load_components
from vidmp3.model.processors import install_processors
from vidmp3.methods import Method, get_method
from vidmp3.model.video_unet import enable_gradient_checkpointing, motion_slots, set_trainable, trainable_unet_parameters
from vidmp3.motionguide import MotionGuide, SubjectMotionGuides, guide_input, motion_guide_config
from vidmp3.precision import resolve_precision
from vidmp3.subjects import SubjectMap

LATENTS_FILE = "latents.safetensors"
"""The source clip's clean latents (float32), saved by fine-tuning so that inversion does not encode it again."""

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
"""What a base model's UNet predicts (its scheduler config); the loss regresses the same quantity."""

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtypes. The frozen weights are stored in the same dtype (half the memory and bandwidth);
the trained ones stay float32, so that Adam's small updates are not rounded away."""


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "vidmp3"
    steps: int = 100
    learning_rate: float = 5e-4
    guide_strength: float = 0.1  # lambda: 0.1 for large motion, 0.05 for small (the sheet's motion class)
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"  # autocast dtype: auto (bf16 on CUDA, fp32 elsewhere), fp32 (off), bf16, fp16 (with gradient scaling)
    gradient_checkpointing: bool = False
    motion_guide_hidden: int = 64  # MotionGuide trunk channels
    window_frames: int = 16  # frames the motion module sees at once; a longer clip trains on a random window per step
    guide_learning_rate: float | None = None  # MotionGuide's Adam rate; None: the method's (vidmp3.methods)


def _check_config(config: FinetuneConfig) -> torch.device:
    if config.window_frames < 1:
        raise InputError(f"window frames must be positive, got {config.window_frames}")
    if config.steps < 1:
        raise InputError(f"finetune steps must be positive, got {config.steps}")
    if not config.learning_rate > 0:
        raise InputError(f"finetune learning_rate must be positive, got {config.learning_rate}")
    if config.guide_learning_rate is not None and not config.guide_learning_rate > 0:
        raise InputError(f"finetune guide_learning_rate must be positive or None, got {config.guide_learning_rate}")
    resolve_precision(config.precision, config.device)
    try:
        device = torch.device(config.device)
    except RuntimeError:
        raise InputError(f"finetune device {config.device!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"finetune device {config.device!r}: CUDA is not available on this machine")
    return device


def _guide_learning_rate(config: FinetuneConfig, method: Method) -> float:
    """The config's MotionGuide rate, else the method's own, else the fine-tuning rate (the paper)."""
    return config.guide_learning_rate or method.guide_learning_rate or config.learning_rate


def _check_inputs(
    frames: np.ndarray,
    guide: np.ndarray | None,
    alpha: np.ndarray | None,
    method: str,
    variant: str | None,
    subjects: SubjectMap | None,
) -> None:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width, _ = frames.shape
    if height % 8 or width % 8:
        raise InputError(f"frames must have a height and width that are multiples of 8, got {height}x{width}")
    if variant is None:
        if guide is not None or alpha is not None:
            raise InputError(f"method {method!r} uses no MotionGuide; it takes no guide or alpha")
        return
    if guide is None or alpha is None:
        raise InputError(f"method {method!r} needs the MotionGuide input (guide) and alpha")
    channels = MotionGuide.in_channels(variant)
    if guide.ndim != 4 or guide.shape[1] != channels:
        raise InputError(f"guide must be (N, {channels}, H, W) for method {method!r} (variant {variant!r}), got {guide.shape}")
    if guide.shape[0] != num_frames:
        raise InputError(f"guide has {guide.shape[0]} frames, the clip has {num_frames}")
    expected = (num_frames,) if subjects is None else (num_frames, len(subjects.ids))
    if alpha.shape != expected:
        raise InputError(f"alpha must have shape {expected} to match the frames (and subjects), got {alpha.shape}")
    if subjects is not None and subjects.labels.shape != guide.shape[:1] + guide.shape[2:]:
        raise InputError(f"the subject map {subjects.labels.shape} does not match the guide {guide.shape}")


def _write_loss_curve(folder: Path, losses: list[tuple[int, int, float]], title: str, prediction_type: str) -> None:
    from matplotlib.figure import Figure  # plotting is no part of the GPU path's imports

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
    video_unet: str | os.PathLike | None = None,
    subjects: SubjectMap | None = None,
) -> None:
    """Fine-tune `config.method` on one video and write the weights folder `out_dir` (atomically).

    frames: uint8 (N, H, W, 3). guide: the MotionGuide input for the method's variant (N, Cin, H', W')
    (vidmp3: C ⊙ D) and alpha (N,) the subject's share of pixels; both None for methods without
    MotionGuide. `video_unet`: the merged video UNet folder (`write_video_unet`), or None to build it
    from the spec. `subjects`: a clip's several subjects, one MotionGuide each (`SubjectMotionGuides`;
    alpha is then (N, K)). Same inputs, config and seed give the same weights (on the same device).
    """
    method = get_method(config.method)
    device = _check_config(config)
    _check_inputs(frames, guide, alpha, config.method, method.guide_variant, subjects)
    num_frames, height, width, _ = frames.shape
    precision = resolve_precision(config.precision, str(device))
    autocast_dtype = PRECISIONS[precision]
    configure_device(device)

    components = load_components(spec, device, autocast_dtype, video_unet=video_unet)
    unet = components.unet
    max_frames = unet.config.motion_max_seq_length
    window = min(num_frames, config.window_frames)
    if window > max_frames:
        raise InputError(f"window of {window} frames: the motion adapter handles at most {max_frames}; set window: frames")
    # Drawn up front on the host (no per-step sync): the first frame of each step's window.
    window_starts = torch.randint(
        0, num_frames - window + 1, (config.steps,), generator=torch.Generator().manual_seed(config.seed)
    ).tolist()
    scheduler = DDPMScheduler.from_config(components.scheduler_config)
    prediction_type = scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise InputError(
            f"model base {spec.base}: prediction type {prediction_type!r} is unknown; expected one of {PREDICTION_TYPES}"
        )

    # Encoded once: the latents are saved with the weights for inversion; the VAE and text encoder
    # then leave the card, which keeps only the UNet, the trained weights and their Adam states.
    latents = components.encode_frames(frames).float()
    text = components.encode_prompt([prompt], height, width)
    components.offload_encoders(vae=True)

    trainable = set_trainable(unet, config.method)
    for parameter in trainable.values():
        parameter.data = parameter.data.float()
    motion_guide = None
    if method.guide_variant is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            guide_config = motion_guide_config(
                method.guide_variant,
                method.guide_layout,
                motion_slots(unet).values(),
                codec_factor(components.vae),
                config.motion_guide_hidden,
                coarse=method.guide_lowest_only,
            )
            if subjects is None:
                motion_guide = MotionGuide(**guide_config)
            else:  # the first subject's MotionGuide is drawn as the one of a one-subject clip
                motion_guide = SubjectMotionGuides(
                    guide_config, subjects.ids, sorted(set(motion_slots(unet).values())), codec_factor(components.vae)
                )
        motion_guide.to(device).train()
        guide_tensor = torch.from_numpy(np.asarray(guide, dtype=np.float32)).to(device)
        alpha_tensor = torch.from_numpy(np.asarray(alpha, dtype=np.float32)).to(device)
        labels_tensor = None if subjects is None else torch.from_numpy(subjects.labels).to(device)

    def window_vectors(start: int, stop: int):
        """MotionGuide's vectors of frames start..stop (with the subject map for several subjects)."""
        window_inputs = (guide_tensor[start:stop], alpha_tensor[start:stop])
        if labels_tensor is not None:
            window_inputs += (labels_tensor[start:stop],)
        return motion_guide(*window_inputs)

    if config.gradient_checkpointing:
        enable_gradient_checkpointing(unet)
    unet.train()

    parameters = list(trainable.values()) + (list(motion_guide.parameters()) if motion_guide else [])
    groups = [{"params": list(trainable.values())}]
    if motion_guide is not None:
        groups.append({"params": list(motion_guide.parameters()), "lr": _guide_learning_rate(config, method)})
    optimizer = torch.optim.Adam(groups, lr=config.learning_rate)
    autocast = precision != "fp32"
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    # On the training device, so that no step waits for the host: noise and timesteps are drawn there
    # and the losses are read back once, after the last step.
    generator = torch.Generator(device).manual_seed(config.seed)

    video_attention = install_processors(unet, value_injection=motion_guide is not None)
    timesteps, losses = [], []
    try:
        for start in tqdm(window_starts, desc=f"fine-tune {config.method}"):
            stop = start + window
            clean = latents[:, :, start:stop]
            timestep = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator, device=device)
            noise = torch.randn(clean.shape, generator=generator, device=device)
            noisy = scheduler.add_noise(clean, noise, timestep)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast):
                vectors = window_vectors(start, stop) if motion_guide else None
            with video_attention.frames(window, vectors, config.guide_strength):
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast):
                    prediction = unet(noisy.to(unet.dtype), timestep, **text.unet_kwargs(window)).sample
                loss = F.mse_loss(prediction.float(), _target(scheduler, clean, noise, timestep))
                scaler.scale(loss).backward()  # inside: checkpointed layers rerun their processors here
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            timesteps.append(timestep)
            losses.append(loss.detach())
        effect = None
        if motion_guide is not None:  # on the clip's first window, as trained
            unet.eval()
            motion_guide.eval()
            with torch.no_grad():
                vectors = window_vectors(0, window)
            effect = measure_guide_effect(
                unet,
                video_attention,
                vectors,
                config.guide_strength,
                latents[:, :, :window].to(unet.dtype),
                text.unet_kwargs(window),
                scheduler,
                config.seed,
                autocast_dtype if autocast else None,
            )
    finally:
        video_attention.restore()
    losses = torch.stack(losses).cpu()
    if not bool(torch.isfinite(losses).all()):
        step = int((~torch.isfinite(losses)).nonzero()[0])
        raise RuntimeError(f"fine-tuning loss is {losses[step].item()} at step {step}; no weights written")
    curve = list(zip(range(config.steps), torch.cat(timesteps).tolist(), losses.tolist()))

    resolved = {
        "model": asdict(spec),
        "finetune": asdict(config) | {"precision": precision},
        "motion_guide": _guide_record(motion_guide),
        "subjects": None
        if subjects is None or motion_guide is None
        else {
            "ids": list(subjects.ids),
            "slots": [list(slot) for slot in motion_guide.slots],
            "latent_factor": motion_guide.latent_factor,
        },
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
        save_file({"source": latents.cpu().contiguous()}, tmp / LATENTS_FILE)
        (tmp / "config.json").write_text(json.dumps(resolved, indent=2))
        _write_loss_curve(tmp, curve, f"{config.method}: {prompt}", prediction_type)
        if effect is not None:
            write_guide_effect(tmp, effect, f"{config.method}: {prompt}")


def _guide_record(motion_guide: MotionGuide | SubjectMotionGuides | None) -> dict | None:
    """The MotionGuide config (each subject's, for a clip with several)."""
    if motion_guide is None:
        return None
    return motion_guide.guide_config if isinstance(motion_guide, SubjectMotionGuides) else dict(motion_guide.config)


def finetune_video(
    priors: str | os.PathLike,
    prompt: str,
    spec: ModelSpec,
    config: FinetuneConfig,
    out_dir: str | os.PathLike,
    video_unet: str | os.PathLike | None = None,
) -> None:
    """`finetune` on a video's priors group (`results/priors/{video}.zarr`): its `frames`, and for
    MotionGuide methods the input of the method's variant built from `corr` and `depth` (the same
    way editing builds it), with `alpha` (and, for a clip with several subjects, their ids `mask_given`)."""
    from vidmp3.store import read_array  # Zarr: only in the workflow's jobs

    priors = Path(priors)
    frames, _ = read_array(priors / "frames")
    variant = get_method(config.method).guide_variant
    guide = alpha = subjects = None
    if variant is not None:
        corr, _ = read_array(priors / "corr")
        depth, _ = read_array(priors / "depth")
        if not (corr.shape[0] == depth.shape[0] == frames.shape[0]):
            raise InputError(
                f"{priors}: priors disagree on the frame count: frames {frames.shape[0]}, "
                f"corr {corr.shape[0]}, depth {depth.shape[0]}"
            )
        guide = guide_input(corr, depth, variant)
        alpha, alpha_attrs = read_array(priors / "alpha")
        if alpha_attrs.get("subjects"):  # a clip with several subjects: their instance ids (vidmp3.subjects)
            subjects = SubjectMap(tuple(alpha_attrs["subjects"]), read_array(priors / "mask_given")[0])
    finetune(frames, guide, alpha, prompt, spec, config, out_dir, video_unet=video_unet, subjects=subjects)


@dataclass
class Finetuned:
    """A fine-tuned video model: base components with the trained weights applied."""

    components: Components
    motion_guide: MotionGuide | SubjectMotionGuides | None
    method: str
    guide_strength: float
    config: dict


def load_finetuned(
    weights_dir: str | os.PathLike,
    device: str | torch.device,
    dtype: torch.dtype,
    video_unet: str | os.PathLike | None = None,
) -> Finetuned:
    """Load the base model recorded in `weights_dir/config.json` (or the merged `video_unet` built from
    it) and apply the trained weights.

    The processors are not installed: the caller does `install_processors(finetuned.components.unet,
    value_injection=finetuned.motion_guide is not None)` and feeds `motion_guide(guide, alpha)` (for
    several subjects `motion_guide(guide, alpha, labels)`) with `guide_strength` through
    `VideoAttention.frames(...)`.
    """
    weights_dir = Path(weights_dir)
    config_path = weights_dir / "config.json"
    if not config_path.is_file():
        raise InputError(f"{weights_dir}: not a fine-tuned weights folder (no config.json)")
    config = json.loads(config_path.read_text())
    method = config["finetune"]["method"]
    components = load_components(ModelSpec(**config["model"]), device, dtype, video_unet=video_unet)
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
        subjects = config.get("subjects")
        motion_guide = (
            MotionGuide(**config["motion_guide"])
            if subjects is None
            else SubjectMotionGuides(config["motion_guide"], subjects["ids"], subjects["slots"], subjects["latent_factor"])
        )
        motion_guide.load_state_dict(load_file(weights_dir / "motion_guide.safetensors"))
        motion_guide.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return Finetuned(components, motion_guide, method, config["finetune"]["guide_strength"], config)
