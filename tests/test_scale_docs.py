"""docs/scale.md: its GitHub Actions workflow passes actionlint, its Indexed Job is one, and both
shard the way imgbuild counts shards."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import REPO

from imgbuild.shard import parse_shard

DOC = REPO / "docs" / "scale.md"


def _blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def _workflow() -> str:
    return next(b for b in _blocks() if "jobs:" in b)


def _actionlint(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("actionlint")
    if exe is None:
        message = "actionlint is missing: install the test extra (python3 -m pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workflows = folder / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / "images.yml").write_text(text, encoding="utf-8")
    return subprocess.run(
        [exe, "-no-color", ".github/workflows/images.yml"], cwd=folder, capture_output=True, text=True, check=False
    )


def test_the_workflow_passes_actionlint(tmp_path: Path) -> None:
    result = _actionlint(tmp_path / "good", _workflow())
    assert result.returncode == 0, result.stdout + result.stderr
    # The linter really reads it: one misspelt matrix key is caught.
    broken = _actionlint(tmp_path / "bad", _workflow().replace("matrix.shard }}/", "matrix.shrad }}/"))
    assert broken.returncode == 1
    assert 'property "shrad" is not defined' in broken.stdout


def test_the_matrix_names_every_shard_once_and_the_fan_in_merges_them() -> None:
    flow: dict[str, Any] = yaml.safe_load(_workflow())
    count = int(flow["env"]["SHARDS"])
    shard_job = flow["jobs"]["shard"]
    shards = shard_job["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, count + 1))
    for i in shards:  # each matrix entry names a valid shard of the same count
        assert parse_shard(shard_job["env"]["IMGBUILD_SHARD"].replace("${{ matrix.shard }}", str(i))).count == count
    assert shard_job["strategy"]["fail-fast"] is False
    merge = flow["jobs"]["merge"]
    assert merge["needs"] == "shard"
    script = "\n".join(step.get("run", "") for step in merge["steps"])
    assert "git merge" in script and "imgbuild merge" in script and "git push" in script


def test_the_kubernetes_job_is_indexed_and_counts_shards_from_its_index() -> None:
    job = next(yaml.safe_load(b) for b in _blocks() if "kind: Job" in b)
    spec = job["spec"]
    assert (job["apiVersion"], job["kind"], spec["completionMode"]) == ("batch/v1", "Job", "Indexed")
    assert spec["completions"] == spec["parallelism"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["SHARDS"]) == spec["completions"]
    script = container["args"][0]
    assert 'IMGBUILD_SHARD="$((JOB_COMPLETION_INDEX + 1))/$SHARDS"' in script
    for index in range(spec["completions"]):  # what the pods of indexes 0..n-1 export
        shown = subprocess.run(
            ["bash", "-c", 'echo "$((JOB_COMPLETION_INDEX + 1))/$SHARDS"'],
            env={"JOB_COMPLETION_INDEX": str(index), "SHARDS": env["SHARDS"], "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert parse_shard(shown).index == index + 1
    syntax = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
