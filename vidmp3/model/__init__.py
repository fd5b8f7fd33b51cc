"""The video diffusion model, built from diffusers parts (no forked UNet).

- `presets`: preset table (tiny, tiny-sdxl, sd15, sdxl) and `load_components`, the one loading path.
- `tiny`: tiny random SD-1.5- and SDXL-shaped components for offline runs and tests.
- `video_unet`: UNetMotionModel from a 2D UNet + motion adapter; methods and their trainable weights.
- `processors`: sparse-causal spatial attention and MotionGuide value injection in temporal attention.
- `full_size`: the real SD-1.5/SDXL + AnimateDiff configs, for shapes without weights (meta device).
- `costs`: activation memory, FLOPs and weight states of a step, counted without running it.
"""
