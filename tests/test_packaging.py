"""The conda environment and the pip requirements pin the same versions; torch is installed only where
none is present (the Makefile's TORCH), so a CUDA build installed first is kept."""

import re
import subprocess

import yaml


def pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def makefile_torch(repo) -> str:
    match = re.search(r"^TORCH \?= (\S+)$", (repo / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile sets no default TORCH"
    return match.group(1)


def test_conda_env_matches_requirements(repo):
    requirements = pins(line.strip() for line in (repo / "requirements.txt").read_text().splitlines() if not line.startswith("#"))
    assert "torch" not in requirements  # a pin there would replace a CUDA torch
    env = yaml.safe_load((repo / "envs" / "vidmp3.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = pins(pip_section)
    # the workflow runner and test tools live in the environment that runs snakemake, not in jobs
    expected = {name: version for name, version in requirements.items() if not name.startswith(("snakemake", "pytest"))}
    expected.update(pins([makefile_torch(repo)]))
    assert conda == expected
    assert "python=3.11" in env["dependencies"]


def test_torch_is_installed_only_where_none_is(repo, tmp_path):
    """`make -n` on a fresh venv: the torch step runs before the requirements and only if `import torch` fails."""
    dry_run = subprocess.run(
        ["make", "-n", "-C", str(repo), f"VENV={tmp_path / 'venv'}", "TORCH=torch==9.9.9", "setup"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    torch_step = next(i for i, line in enumerate(dry_run) if "torch==9.9.9" in line)
    requirements_step = next(i for i, line in enumerate(dry_run) if "-r requirements.txt" in line)
    assert torch_step < requirements_step
    assert re.fullmatch(
        r'\S+/bin/python -c "import torch" 2>/dev/null \|\| \S+/bin/python -m pip install --quiet torch==9.9.9',
        dry_run[torch_step],
    )
