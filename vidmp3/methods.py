"""The methods the workflow compares: VidMP3, its ablations and the Tune-A-Video baseline.

Beyond the paper: `vidmp3-lr` is vidmp3 with MotionGuide's own learning rate; `vidmp3-spatial` and
`vidmp3-spatial-coarse` (with that learning rate too) use the same MotionGuide trunk with per-pixel
vectors at every motion-module resolution, or only at the lowest one (vidmp3.motionguide);
`vidmp3-spatial-tav` is vidmp3-spatial trained like Tune-A-Video (every motion-module weight).

Kept free of torch so the Snakefile can read it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidmp3.errors import InputError


GUIDE_LEARNING_RATE = 1e-2
"""MotionGuide's learning rate in the variants beyond the paper. Adam moves each zero-initialised head
weight by about lr per step, so the paper's 5e-4 leaves the MotionGuide's term at 3e-4 to 1e-3 of the
value input after 100 steps (issue 14); chosen on ToyWorld validation clips (README, ToyWorld benchmark)."""


@dataclass(frozen=True)
class Method:
    guide_variant: str | None  # MotionGuide input variant (vidmp3.motionguide.VARIANT_CHANNELS); None: no MotionGuide
    whole_motion_modules: bool  # train every motion-module weight (Tune-A-Video) instead of the attention projections
    guide_layout: str = "pooled"  # vidmp3.motionguide.LAYOUTS: the paper's one vector per frame, or per pixel
    guide_lowest_only: bool = False  # spatial: feed only the lowest-resolution motion modules (less shape detail)
    guide_learning_rate: float | None = None  # MotionGuide's own Adam learning rate; None: the fine-tuning one (paper)


METHODS = {
    "vidmp3": Method("product", False),
    "vidmp3-lr": Method("product", False, guide_learning_rate=GUIDE_LEARNING_RATE),
    "vidmp3-spatial": Method("product", False, "spatial", guide_learning_rate=GUIDE_LEARNING_RATE),
    "vidmp3-spatial-coarse": Method("product", False, "spatial", guide_lowest_only=True, guide_learning_rate=GUIDE_LEARNING_RATE),
    "vidmp3-spatial-tav": Method("product", True, "spatial", guide_learning_rate=GUIDE_LEARNING_RATE),
    "no-motionguide": Method(None, False),
    "corr-only": Method("corr", False),
    "depth-only": Method("depth", False),
    "concat": Method("concat", False),
    "tune-a-video": Method(None, True),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise InputError(f"method {name!r} is unknown; expected one of {sorted(METHODS)}")
    return METHODS[name]
