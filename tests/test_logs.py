"""A job's output: its own errors reach the terminal as one short message, the rest goes to its log."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from vidmp3.logs import job_name

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_job(tmp_path, body: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run `body` inside log_to, as a workflow script does; return the process and its log."""
    log = tmp_path / "results" / "logs" / "priors_mask" / "clip.log"
    log.parent.mkdir(parents=True)
    script = f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom vidmp3.logs import log_to\n" + textwrap.dedent(body)
    script = script.replace("LOG", repr(str(log)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    return result, log.read_text()


@pytest.mark.parametrize(
    "error",
    [
        "InputError('clips/clip: not found; fix the source column')",
        "OutputError(28, 'clips/clip: not found; fix the source column')",
    ],
)
def test_the_projects_errors_are_one_short_message_and_the_traceback_stays_in_the_log(tmp_path, error):
    result, log = run_job(
        tmp_path,
        f"""
        from vidmp3.errors import InputError, OutputError
        with log_to(LOG):
            raise {error}
    """,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first, second = result.stderr.splitlines()
    assert first.startswith("vidmp3: priors_mask clip: ") and first.endswith("clips/clip: not found; fix the source column")
    assert "results/logs/priors_mask/clip.log" in second
    assert "Traceback" in log and "clips/clip: not found" in log


def test_any_other_error_keeps_its_traceback(tmp_path):
    result, log = run_job(
        tmp_path,
        """
        with log_to(LOG):
            {}["missing"]
    """,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError" in result.stderr and "KeyError" in log


def test_library_loggers_go_to_the_log_and_harmless_warnings_are_dropped(tmp_path):
    result, log = run_job(
        tmp_path,
        """
        from diffusers.utils import logging as diffusers_logging
        logger = diffusers_logging.get_logger("diffusers.models.modeling_utils")  # diffusers' own stderr handler
        with log_to(LOG):
            logger.warning("There are modules in UNetMotionModel that should be kept in float32: []. Casting directly")
            logger.warning("a warning that matters")
        logger.warning("after the job")
    """,
    )
    assert result.returncode == 0, result.stderr
    assert "should be kept in float32" not in result.stderr + log
    assert "a warning that matters" in log and "a warning that matters" not in result.stderr
    assert "after the job" in result.stderr  # the library's own handler is back


def test_job_name_is_the_rule_and_wildcards_of_the_log_path():
    assert job_name("results/logs/priors_corr/bear.log") == "priors_corr bear"
    assert job_name("/x/results/logs/finetune/vidmp3/bear.log") == "finetune vidmp3/bear"
    assert job_name("results/logs/shape_invariance.log") == "shape_invariance"
    assert job_name("job.log") == "job.log"
