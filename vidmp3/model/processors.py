"""Attention processors of the video UNet: sparse-causal spatial self-attention and MotionGuide value injection.

- `SparseCausalAttnProcessor` (spatial `attn1`): frame i attends to the keys and values of frame 0
  and frame i-1 (frame 0 to itself), which keeps appearance consistent with the first frame
  (Tune-A-Video).
- `MotionGuideValueProcessor` (both temporal self-attentions of every motion module): the value
  input gets the frame's MotionGuide vector, V = W_V (z + lambda * phi), while Q and K see z alone,
  so the motion representation changes what is mixed across frames, not where attention looks.
  phi is either one vector per frame and width (the paper's pooled MotionGuide, broadcast over
  pixels) or one vector per frame and pixel of the layer (the spatial MotionGuide), keyed by
  (width, downsample): the layer's resolution is the latents' divided by `downsample`. A clip with
  several subjects comes here as per-pixel vectors too, each subject's on its own pixels
  (`vidmp3.motionguide.SubjectMotionGuides`).
- `SubjectPromptProcessor` (spatial cross-attention `attn2`, installed for clips with several
  subjects): each subject's pixels attend to that subject's own phrase, the rest to the whole prompt,
  so nothing but the map binds "a tiger" to subject 1 (regional prompting).

The UNet's motion blocks do not forward `cross_attention_kwargs`, so the frame count and the
per-frame vectors reach the processors through a shared `FrameState`, set only inside
`VideoAttention.frames(...)`; a processor that runs outside it raises instead of guessing.
Processors are installed by `install_processors` and `VideoAttention.restore()` puts the original
processor objects back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers import UNetMotionModel
from diffusers.models.attention_processor import Attention

from vidmp3.model.video_unet import attention_layers, cross_attention_downsamples, motion_slots, motion_widths


GuideKey = int | tuple[int, int]
"""A MotionGuide vector set's key: its width (pooled, (N, width)) or (width, downsample) (per pixel,
(N, h, w, width) at the latents' resolution divided by `downsample`)."""


class FrameState:
    """What the installed processors need for one UNet call (None outside `VideoAttention.frames`)."""

    def __init__(self):
        self.num_frames: int | None = None
        self.guide_vectors: dict[GuideKey, torch.Tensor] | None = None
        self.guide_strength: float = 0.0
        self.subject_text: torch.Tensor | None = None  # (K, batch * frames, tokens, width): each subject's phrase
        self.subject_shares: torch.Tensor | None = None  # (K, frames, h, w): each subject's share of a latent pixel

    def frames_for(self, processor: str, batch_frames: int) -> int:
        if self.num_frames is None:
            raise RuntimeError(
                f"{processor} ran outside VideoAttention.frames(...): the frame count is unknown "
                "(call the UNet, and backward with gradient checkpointing, inside that context)"
            )
        if batch_frames % self.num_frames:
            raise RuntimeError(f"{processor}: a batch of {batch_frames} images is not a multiple of {self.num_frames} frames")
        return self.num_frames


def _split_heads(attn: Attention, states: torch.Tensor) -> torch.Tensor:
    batch, length, inner_dim = states.shape
    return states.view(batch, length, attn.heads, inner_dim // attn.heads).transpose(1, 2)


def _merge_heads_and_project(attn: Attention, states: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    batch, heads, length, head_dim = states.shape
    states = states.transpose(1, 2).reshape(batch, length, heads * head_dim).to(dtype)
    states = attn.to_out[0](states)
    return attn.to_out[1](states)


class SparseCausalAttnProcessor:
    """Spatial self-attention where frame i attends to frames 0 and i-1 (frame 0: to itself, twice,
    which is the same attention as once)."""

    def __init__(self, state: FrameState):
        self.state = state

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("SparseCausalAttnProcessor is self-attention without a mask")
        batch_frames, length, _ = hidden_states.shape
        num_frames = self.state.frames_for("SparseCausalAttnProcessor", batch_frames)
        batch = batch_frames // num_frames

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        first = torch.zeros(num_frames, dtype=torch.long, device=hidden_states.device)
        previous = (torch.arange(num_frames, device=hidden_states.device) - 1).clamp_min(0)
        key = key.view(batch, num_frames, length, -1)
        value = value.view(batch, num_frames, length, -1)
        key = torch.cat([key[:, first], key[:, previous]], dim=2).view(batch_frames, 2 * length, -1)
        value = torch.cat([value[:, first], value[:, previous]], dim=2).view(batch_frames, 2 * length, -1)

        hidden_states = F.scaled_dot_product_attention(
            _split_heads(attn, query), _split_heads(attn, key), _split_heads(attn, value)
        )
        return _merge_heads_and_project(attn, hidden_states, query.dtype)


class MotionGuideValueProcessor:
    """Temporal self-attention (tokens = frames) with V = W_V (z + lambda * phi).

    Motion-module hidden states are (batch * h * w, frames, width), pixel-major within each video. phi
    is the frame's pooled vector of this width, broadcast over batch and pixels, or, where the state
    holds per-pixel vectors for (width, downsample), each pixel's own vector (the same for every video
    of the batch); a layer with no per-pixel entry gets none (phi = 0). With lambda 0 or zero vectors
    the result equals diffusers' AttnProcessor2_0 exactly.
    """

    def __init__(self, state: FrameState, downsample: int = 1):
        self.state = state
        self.downsample = downsample

    def injection(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """lambda * phi as added to the value input, broadcastable to `hidden_states`; None for none."""
        tokens, num_frames, width = hidden_states.shape
        expected_frames = self.state.frames_for("MotionGuideValueProcessor", num_frames)
        if num_frames != expected_frames:
            raise RuntimeError(f"MotionGuideValueProcessor: {num_frames} frames in attention, the context says {expected_frames}")
        vectors = self.state.guide_vectors
        if vectors is None:
            raise RuntimeError("MotionGuideValueProcessor ran without MotionGuide vectors")
        if width in vectors:
            return self.state.guide_strength * vectors[width].to(hidden_states.dtype)
        pixel_vectors = vectors.get((width, self.downsample))
        if pixel_vectors is None:
            return None
        _, height, columns, _ = pixel_vectors.shape
        if tokens % (height * columns):
            raise RuntimeError(
                f"MotionGuideValueProcessor: {tokens} tokens are not a whole number of {height}x{columns} "
                f"frames (width {width}, downsample {self.downsample})"
            )
        per_pixel = pixel_vectors.permute(1, 2, 0, 3).reshape(height * columns, num_frames, width)
        per_pixel = per_pixel.repeat(tokens // (height * columns), 1, 1)
        return self.state.guide_strength * per_pixel.to(hidden_states.dtype)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("MotionGuideValueProcessor is self-attention across frames without a mask")
        injection = self.injection(hidden_states)

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states if injection is None else hidden_states + injection)

        hidden_states = F.scaled_dot_product_attention(
            _split_heads(attn, query), _split_heads(attn, key), _split_heads(attn, value)
        )
        return _merge_heads_and_project(attn, hidden_states, query.dtype)


class SubjectPromptProcessor:
    """Spatial cross-attention in which each subject's pixels attend to its own phrase.

    out = sum_k m_k attn(q, phrase_k) + (1 - sum_k m_k) attn(q, prompt), with m_k subject k's share of
    each pixel of the layer (its map area-averaged to the layer's resolution, the latents' divided by
    `downsample`). The output projection is linear, so blending before it is blending the layer's
    outputs. Without subject phrases in the state it is diffusers' AttnProcessor2_0 exactly.
    """

    def __init__(self, state: FrameState, downsample: int = 1):
        self.state = state
        self.downsample = downsample

    def shares(self, batch_frames: int, tokens: int) -> torch.Tensor:
        """(K, batch * frames, tokens, 1): each subject's share of every token of this layer."""
        shares = self.state.subject_shares
        num_frames = self.state.frames_for("SubjectPromptProcessor", batch_frames)
        if shares.shape[1] != num_frames:
            raise RuntimeError(
                f"SubjectPromptProcessor: subject shares of {shares.shape[1]} frames, the context says {num_frames}"
            )
        if self.downsample > 1:
            shares = F.avg_pool2d(shares, self.downsample)
        if shares.shape[2] * shares.shape[3] != tokens:
            raise RuntimeError(
                f"SubjectPromptProcessor: {tokens} tokens are not the {shares.shape[2]}x{shares.shape[3]} pixels of "
                f"the subject shares at downsample {self.downsample}"
            )
        shares = shares.flatten(2).repeat(1, batch_frames // num_frames, 1)
        return shares.unsqueeze(-1)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None:
            raise ValueError("SubjectPromptProcessor is cross-attention to the prompt without a mask")
        query = _split_heads(attn, attn.to_q(hidden_states))
        prompt = F.scaled_dot_product_attention(
            query,
            _split_heads(attn, attn.to_k(encoder_hidden_states)),
            _split_heads(attn, attn.to_v(encoder_hidden_states)),
        )
        if self.state.subject_text is not None:
            batch_frames, tokens, _ = hidden_states.shape
            shares = self.shares(batch_frames, tokens).to(prompt.dtype)  # (K, batch * frames, tokens, 1)
            blended = prompt * (1 - shares.sum(dim=0)).unsqueeze(1)
            for share, phrase in zip(shares, self.state.subject_text):
                attended = F.scaled_dot_product_attention(
                    query, _split_heads(attn, attn.to_k(phrase)), _split_heads(attn, attn.to_v(phrase))
                )
                blended = blended + attended * share.unsqueeze(1)
            prompt = blended
        return _merge_heads_and_project(attn, prompt, query.dtype)


def _check_plain_attention(name: str, attn: Attention, cross: bool = False) -> None:
    """The processors implement plain self- (or cross-) attention; refuse layers with extras they would skip."""
    extras = {
        "cross-attention" if not cross else "self-attention": attn.is_cross_attention != cross,
        "norm_cross": attn.norm_cross is not None,
        "spatial_norm": attn.spatial_norm is not None,
        "group_norm": attn.group_norm is not None,
        "norm_q/norm_k": attn.norm_q is not None or attn.norm_k is not None,
        "residual_connection": attn.residual_connection,
        "rescale_output_factor": attn.rescale_output_factor != 1.0,
    }
    found = [extra for extra, present in extras.items() if present]
    if found:
        raise ValueError(f"attention layer {name} has {', '.join(found)}, which the video processors do not support")


class VideoAttention:
    """The video processors installed on one UNet: `frames(...)` feeds them, `restore()` removes them."""

    def __init__(self, unet: UNetMotionModel, value_injection: bool, subject_prompts: bool = False):
        ours = (SparseCausalAttnProcessor, MotionGuideValueProcessor, SubjectPromptProcessor)
        if any(isinstance(processor, ours) for processor in unet.attn_processors.values()):
            raise RuntimeError("video attention processors are already installed on this UNet; restore() them first")
        spatial, temporal = attention_layers(unet)
        self.unet = unet
        self.value_injection = value_injection
        self.guide_widths = motion_widths(unet)
        self.guide_slots = motion_slots(unet)
        self.state = FrameState()
        self.original_processors = unet.attn_processors
        sparse_causal = SparseCausalAttnProcessor(self.state)
        downsamples = {downsample for _, downsample in self.guide_slots.values()}
        value = {downsample: MotionGuideValueProcessor(self.state, downsample) for downsample in downsamples}
        processors = dict(self.original_processors)
        for name, attn in spatial.items():
            if name.endswith(".attn1"):
                _check_plain_attention(name, attn)
                processors[f"{name}.processor"] = sparse_causal
        if value_injection:
            for name, attn in temporal.items():
                _check_plain_attention(name, attn)
                processors[f"{name}.processor"] = value[self.guide_slots[name][1]]
        self.subject_prompts = subject_prompts
        if subject_prompts:
            cross = cross_attention_downsamples(unet)
            regional = {downsample: SubjectPromptProcessor(self.state, downsample) for downsample in set(cross.values())}
            for name, downsample in cross.items():
                _check_plain_attention(name, spatial[name], cross=True)
                processors[f"{name}.processor"] = regional[downsample]
        unet.set_attn_processor(processors)

    @contextmanager
    def frames(
        self,
        num_frames: int,
        guide_vectors: dict[GuideKey, torch.Tensor] | None = None,
        guide_strength: float = 0.0,
        subject_text: torch.Tensor | None = None,
        subject_shares: torch.Tensor | None = None,
    ) -> Iterator[None]:
        """Inside: UNet calls see `num_frames` frames per video and, with value injection, the MotionGuide
        vectors scaled by `guide_strength` (lambda): pooled {width: (num_frames, width)} for every width, or
        per pixel {(width, downsample): (num_frames, h, w, width)} for some of the motion layers' slots.
        With subject prompts installed, `subject_text` (K, batch * num_frames, tokens, width), each
        subject's phrase as the UNet's encoder states, and `subject_shares` (K, num_frames, h, w), each
        subject's share of every latent pixel, make each subject attend to its phrase (both None: the
        whole prompt everywhere)."""
        if self.state.num_frames is not None:
            raise RuntimeError("VideoAttention.frames(...) is already active")
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        if self.value_injection:
            if guide_vectors is None:
                raise ValueError("value injection is installed: frames(...) needs the MotionGuide vectors")
            self._check_vectors(num_frames, guide_vectors)
        elif guide_vectors is not None:
            raise ValueError("MotionGuide vectors given, but value injection is not installed")
        if (subject_text is None) != (subject_shares is None):
            raise ValueError("subject prompts need both the subjects' text and their shares of the pixels")
        if subject_text is not None:
            if not self.subject_prompts:
                raise ValueError("subject prompts given, but their processors are not installed")
            if subject_shares.ndim != 4 or subject_shares.shape[:2] != (subject_text.shape[0], num_frames):
                raise ValueError(
                    f"subject shares have shape {tuple(subject_shares.shape)}, expected ({subject_text.shape[0]}, "
                    f"{num_frames}, h, w) for {subject_text.shape[0]} subjects and {num_frames} frames"
                )
        self.state.num_frames = num_frames
        self.state.guide_vectors = guide_vectors
        self.state.guide_strength = float(guide_strength)
        self.state.subject_text = subject_text
        self.state.subject_shares = subject_shares
        try:
            yield
        finally:
            self.state.num_frames = None
            self.state.guide_vectors = None
            self.state.guide_strength = 0.0
            self.state.subject_text = None
            self.state.subject_shares = None

    def _check_vectors(self, num_frames: int, guide_vectors: dict[GuideKey, torch.Tensor]) -> None:
        slots = set(self.guide_slots.values())
        if all(isinstance(key, tuple) for key in guide_vectors):
            if not guide_vectors or not set(guide_vectors) <= slots:
                raise ValueError(
                    f"per-pixel MotionGuide vectors have keys {sorted(guide_vectors)}; the motion modules' "
                    f"(width, downsample) slots are {sorted(slots)}"
                )
            for (width, _), vectors in guide_vectors.items():
                if vectors.ndim != 4 or vectors.shape[0] != num_frames or vectors.shape[-1] != width:
                    raise ValueError(
                        f"per-pixel MotionGuide vectors of width {width} have shape {tuple(vectors.shape)}, "
                        f"expected ({num_frames}, h, w, {width}) for {num_frames} frames"
                    )
            return
        if set(guide_vectors) != set(self.guide_widths):
            raise ValueError(
                f"MotionGuide vectors have widths {sorted(guide_vectors, key=str)}, "
                f"the motion modules need {list(self.guide_widths)}"
            )
        for width, vectors in guide_vectors.items():
            if tuple(vectors.shape) != (num_frames, width):
                raise ValueError(
                    f"MotionGuide vectors of width {width} have shape {tuple(vectors.shape)}, "
                    f"expected ({num_frames}, {width}) for {num_frames} frames"
                )

    def restore(self) -> None:
        """Put the UNet's original processor objects back."""
        self.unet.set_attn_processor(dict(self.original_processors))  # set_attn_processor empties the dict


def install_processors(unet: UNetMotionModel, value_injection: bool, subject_prompts: bool = False) -> VideoAttention:
    """Install sparse-causal spatial self-attention, with `value_injection` MotionGuide value injection
    on both temporal self-attentions of every motion module, and with `subject_prompts` per-subject
    phrases in every spatial cross-attention."""
    return VideoAttention(unet, value_injection, subject_prompts)
