"""Pretraining of the ToyWorld models from the project's own renders: a text-to-image model, then a motion module.

No real weights can be had offline, so ToyWorld trains miniature versions of the real classes
(`UNet2DConditionModel`, `CLIPTextModel`, `MotionAdapter`) on renders of four shapes in four colours,
small enough for 2 CPU cores:

- `image.pretrain_image`: the UNet and the text encoder from scratch on still renders with their captions.
  The UNet predicts the clean latent (`prediction_type="sample"`; noise prediction was still noisy
  after the same time when ToyWorld was planned), 10% of captions are dropped to the empty prompt so
  classifier-free guidance works, and the saved weights are an exponential moving average (EMA).
  Latents are the 2x2 pixel-unshuffled frames (`PixelUnshuffleCodec`): exact, nothing to train.
- `motion.pretrain_motion`: a `MotionAdapter` on the frozen image UNet (`build_video_unet`), on 8-frame clips
  of subjects moving, turning and changing depth, with the same objective. Spatial self-attention is
  the ordinary one, as AnimateDiff trains its motion modules: the ToyWorld preset then stands where the
  real AnimateDiff weights stand, and the project's fine-tuning switches to sparse-causal attention
  on top of it exactly as it does for them.
- `export.export_weights`: float16 copies in the preset layout, with the seeds, settings and measured quality.

`models` defines the three models, `settings` the stages' settings, `training` what the stages share. Data seeds stay below
`world.HELD_OUT_SEED`: the benchmark's clips are never seen in pretraining. Each stage writes its
folder atomically, with a loss curve, sample images and their classification by the ToyWorld
classifier (when given one).
"""
