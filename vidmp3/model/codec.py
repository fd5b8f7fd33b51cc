"""The ToyWorld codec: pixels folded into channels, behind the same interface as AutoencoderKL.

ToyWorld's frames are 32x32, small enough for the UNet to work on pixels directly. A 2x2
`pixel_unshuffle` turns them into 16x16x12 "latents" (2.5x cheaper to train on than 32x32x3, as
measured when ToyWorld was planned) and `pixel_shuffle` turns them back exactly. So the codec has no
weights to train and adds no reconstruction error: inversion and the benchmark's metrics see only
what the video model does. It answers `encode(...).latent_dist.mean` / `.mode()` and
`decode(...).sample` like AutoencoderKL, so fine-tuning, inversion and editing need no branch for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput


class PixelUnshuffleCodec(ModelMixin, ConfigMixin):
    """Exact, parameter-free codec: (B, C, H, W) in [-1, 1] <-> (B, C * factor², H / factor, W / factor)."""

    @register_to_config
    def __init__(self, factor: int = 2, in_channels: int = 3, scaling_factor: float = 1.0, force_upcast: bool = False):
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be positive, got {factor}")
        # No weights, but `.to(device, dtype)` must stick and `.dtype` / `.device` must answer as they do
        # for AutoencoderKL: an empty buffer that is never saved carries them.
        self.register_buffer("placement", torch.zeros(0), persistent=False)

    @property
    def latent_channels(self) -> int:
        return self.config.in_channels * self.config.factor**2

    def encode(self, pixels: torch.Tensor) -> AutoencoderKLOutput:
        """A deterministic posterior whose mean (and mode) is the folded image."""
        if pixels.shape[1] != self.config.in_channels:
            raise ValueError(f"expected {self.config.in_channels} channels, got {pixels.shape[1]}")
        folded = F.pixel_unshuffle(pixels, self.config.factor)
        parameters = torch.cat([folded, torch.zeros_like(folded)], dim=1)  # mean and log-variance
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(parameters, deterministic=True))

    def decode(self, latents: torch.Tensor) -> DecoderOutput:
        if latents.shape[1] != self.latent_channels:
            raise ValueError(f"expected {self.latent_channels} latent channels, got {latents.shape[1]}")
        return DecoderOutput(sample=F.pixel_shuffle(latents, self.config.factor))


def codec_factor(codec: PixelUnshuffleCodec | AutoencoderKL) -> int:
    """How many pixels make one latent pixel along each side (ToyWorld's codec: its factor; a VAE: 2 per down block)."""
    if isinstance(codec, PixelUnshuffleCodec):
        return codec.config.factor
    return 2 ** (len(codec.config.block_out_channels) - 1)
