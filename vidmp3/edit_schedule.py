"""Which DDIM steps an edit inverts and samples, checked without torch (at parse time too).

`strength` is the share of the schedule that is inverted and sampled back, as in diffusers'
video-to-video pipelines: 1 inverts to the last timestep (the paper); below 1 inversion stops at an
intermediate timestep and sampling starts there, so the source's layout is kept more and the edit
changes less.
"""

from __future__ import annotations

from vidmp3.errors import InputError


def sampled_steps(steps: int, strength: float) -> int:
    """How many of `steps` DDIM steps a `strength` covers (at least one)."""
    if not 0.0 < strength <= 1.0:
        raise InputError(f"editing strength must be in (0, 1], got {strength}")
    count = round(strength * steps)
    if count < 1:
        raise InputError(f"editing strength {strength} covers no step of {steps}; raise it to at least {1 / steps:.3g}")
    return count


def check_edit_schedule(inversion_steps: int, steps: int, strength: float, unguided_steps: int) -> None:
    """An edit's inversion and sampling must meet at one timestep; `unguided_steps` counts sampled steps."""
    count = sampled_steps(steps, strength)
    if strength < 1.0 and inversion_steps != steps:
        raise InputError(
            f"editing strength {strength} needs inversion: steps ({inversion_steps}) equal to editing: steps ({steps}), "
            "so that inversion stops at the timestep sampling starts from; set them equal or strength 1"
        )
    if not 0 <= unguided_steps <= count:
        raise InputError(f"editing unguided_steps must be between 0 and the {count} sampled steps, got {unguided_steps}")
