"""The conda environment and the pip requirements pin the same versions."""

import yaml


def pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_conda_env_matches_requirements(repo):
    requirements = pins(l.strip() for l in (repo / "requirements.txt").read_text().splitlines() if not l.startswith("#"))
    env = yaml.safe_load((repo / "envs" / "vidmp3.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = pins(pip_section)
    # the workflow runner and test tools live in the environment that runs snakemake, not in jobs
    expected = {name: version for name, version in requirements.items() if not name.startswith(("snakemake", "pytest"))}
    assert conda == expected
    assert "python=3.11" in env["dependencies"]
