"""Precision names (config `dtype` and `finetune: precision`), resolved without torch so that the
Snakefile can decide at parse time in which dtype the merged video model is stored."""

from __future__ import annotations

from vidmp3.errors import InputError

DTYPE_NAMES = ("float32", "bfloat16", "float16")
PRECISION_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
"""Fine-tuning's autocast precision -> the dtype its frozen weights are stored in."""


def _is_cuda(device: str) -> bool:
    return device.split(":")[0] == "cuda"


def resolve_dtype_name(dtype: str, device: str) -> str:
    """Inversion and editing dtype: `auto` is bfloat16 on CUDA (tensor cores, no overflow) and float32
    elsewhere (CPUs gain little from half precision and lose accuracy)."""
    if dtype == "auto":
        return "bfloat16" if _is_cuda(device) else "float32"
    if dtype not in DTYPE_NAMES:
        raise InputError(f"dtype {dtype!r} is unknown; expected auto or one of {list(DTYPE_NAMES)}")
    return dtype


def resolve_precision(precision: str, device: str) -> str:
    """Fine-tuning precision: `auto` is bf16 on CUDA (no loss scaling needed), fp32 elsewhere."""
    if precision == "auto":
        return "bf16" if _is_cuda(device) else "fp32"
    if precision not in PRECISION_DTYPES:
        raise InputError(f"finetune precision {precision!r} is unknown; expected auto or one of {sorted(PRECISION_DTYPES)}")
    return precision


def video_model_dtype(device: str, dtype: str, precision: str) -> str:
    """The dtype the merged video model is stored in: the one dtype fine-tuning and editing both use,
    or float32 when they differ (casting up from half precision would not give the weights back)."""
    inference = resolve_dtype_name(dtype, device)
    training = PRECISION_DTYPES[resolve_precision(precision, device)]
    return inference if inference == training else "float32"
