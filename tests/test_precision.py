"""Precision names resolved without torch (vidmp3.precision), as the Snakefile does at parse time."""

from __future__ import annotations

import pytest

from vidmp3.errors import InputError
from vidmp3.precision import resolve_dtype_name, resolve_precision, video_model_dtype


def test_auto_is_bf16_on_cuda_and_float32_elsewhere():
    assert resolve_dtype_name("auto", "cuda") == resolve_dtype_name("auto", "cuda:1") == "bfloat16"
    assert resolve_dtype_name("auto", "cpu") == "float32"
    assert resolve_precision("auto", "cuda:0") == "bf16" and resolve_precision("auto", "cpu") == "fp32"
    assert resolve_dtype_name("float16", "cuda") == "float16" and resolve_precision("fp16", "cpu") == "fp16"


def test_the_merged_video_model_is_stored_in_the_one_dtype_both_stages_use():
    assert video_model_dtype("cuda", "auto", "auto") == "bfloat16"
    assert video_model_dtype("cpu", "auto", "auto") == "float32"
    assert video_model_dtype("cuda", "float16", "fp16") == "float16"
    assert video_model_dtype("cuda", "bfloat16", "fp32") == "float32"  # fine-tuning needs float32 weights


def test_unknown_names_are_input_errors():
    with pytest.raises(InputError, match="dtype 'fp64' is unknown"):
        resolve_dtype_name("fp64", "cpu")
    with pytest.raises(InputError, match="precision 'fp8' is unknown"):
        resolve_precision("fp8", "cuda")
