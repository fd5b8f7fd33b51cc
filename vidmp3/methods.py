"""The methods the workflow compares: VidMP3, its ablations and the Tune-A-Video baseline.

Kept free of torch so the Snakefile can read it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidmp3.errors import InputError


@dataclass(frozen=True)
class Method:
    guide_variant: str | None  # MotionGuide input variant (vidmp3.motionguide.VARIANT_CHANNELS); None: no MotionGuide
    whole_motion_modules: bool  # train every motion-module weight (Tune-A-Video) instead of the attention projections


METHODS = {
    "vidmp3": Method("product", False),
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
