"""Builders for test projects: real files in a folder, valid unless a test says otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import imgbuild.main

REPO = Path(__file__).resolve().parents[1]

PERSONA = """\
id: mia
name: Mia Tan
traits:
  face: oval face, light freckles
  age_range: late twenties
evidence:
  - path: evidence/mia.md
allowed:
  wardrobe: [cream sweater, navy blazer, olive overshirt]
  environment: [home office, cafe]
  lighting: [morning light, lamp light]
"""

TEMPLATE = """\
Photo of {{ persona.name }}, {{ persona.traits.face }}, wearing a {{ attrs.wardrobe }},
in a {{ attrs.environment }}, {{ attrs.lighting }}.
"""

BATCH = """\
purpose: covers for tests
persona: mia
source_basis:
  - path: evidence/mia.md
output: assets
quality: draft
quality_reason: tests only need small placeholders
aspect_ratio: "1:1"
output_format: jpeg
fixed:
  wardrobe: cream sweater
vary:
  environment: [home office, cafe]
  lighting: [morning light, lamp light]
shots:
  - id: hook
    need: a first frame
    template: cover.j2
    candidates: 2
    editable: [wardrobe, lighting]
"""


# imgbuild.yaml marks the project root; every key has a default, so a comment is enough.
CONFIG = "# a test project: every setting at its default\n"


def write_project(
    root: Path,
    *,
    batches: dict[str, str] | None = None,
    personas: dict[str, str] | None = None,
    templates: dict[str, str] | None = None,
    evidence: dict[str, str] | None = None,
    config: str | None = None,
    dodo: bool = True,
) -> Path:
    """Write a project under `root` (defaults: one persona, one batch `covers`, one template, and
    an imgbuild.yaml with every setting at its default unless `config` or an earlier one is there)."""
    files = {
        **{f"batches/{k}.yaml": v for k, v in (batches if batches is not None else {"covers": BATCH}).items()},
        **{f"personas/{k}.yaml": v for k, v in (personas if personas is not None else {"mia": PERSONA}).items()},
        **{f"templates/{k}": v for k, v in (templates if templates is not None else {"cover.j2": TEMPLATE}).items()},
        **{
            f"evidence/{k}": v
            for k, v in (evidence if evidence is not None else {"mia.md": "# Mia benchmark\n"}).items()
        },
    }
    if config is not None:
        files["imgbuild.yaml"] = config
    elif not (root / "imgbuild.yaml").exists():  # a rewrite keeps the test's own config
        files["imgbuild.yaml"] = CONFIG
    if dodo:
        files["dodo.py"] = (
            'from imgbuild.tasks import project_tasks\n\nDOIT_CONFIG, task_imgbuild = project_tasks(".")\n'
        )
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run_cli(root: Path, *args: str) -> int:
    """Run `imgbuild -C root ARGS` in-process; returns the exit code."""
    return imgbuild.main.main(["-C", str(root), *args])


def run_doit(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run plain `doit` in `root` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → bytes), leaving out internal state (.imgbuild/)."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".imgbuild" not in p.relative_to(folder).parts
    }


def copy_examples(target: Path) -> Path:
    """A copy of the repository's example project (batches/, without generated outputs)."""
    shutil.copytree(
        REPO / "batches",
        target,
        ignore=shutil.ignore_patterns("assets", "*.lock.json", ".imgbuild"),
    )
    return target


def copy_repo_layout(target: Path) -> Path:
    """The top of a clone of this repository: its pyproject.toml (whose ``[tool.imgbuild]`` points
    at batches/), its dodo.py and the example project in batches/."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    shutil.copy(REPO / "dodo.py", target / "dodo.py")
    copy_examples(target / "batches")
    return target


def summary(count: int) -> str:
    """The last line of every input error: how many problems, and that nothing was generated."""
    return f"{count} problem{'s' if count != 1 else ''} in the project's input; nothing was generated"


def rejected(root: Path, capsys: pytest.CaptureFixture[str], command: str = "plan") -> list[str]:
    """Run `imgbuild COMMAND` on a bad project: exit 2, no traceback, no file written; the
    lines printed on stderr (warnings left out), the last being the summary with the right count."""
    before = snapshot(root)
    code = run_cli(root, command)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    assert code == 2, out.err
    assert not (root / "assets").exists()
    assert snapshot(root) == before
    lines = [line for line in out.err.splitlines() if not line.startswith("warning: ")]
    assert lines, "no message at all"
    assert lines[-1] == summary(len(lines) - 1)
    return lines


def model_batch(
    model: str | None,
    shots: str,
    *,
    extra: str = "",
    quality: str = "standard",
    aspect: str = "1:1",
    output_format: str = "png",
) -> str:
    """A batch manifest for persona mia on `model` (None: `extra` says the models) with three fixed
    attributes; `shots` is the YAML of its shot list, `extra` more top-level YAML."""
    return (
        "purpose: a model on its route\npersona: mia\nsource_basis:\n  - path: evidence/mia.md\noutput: assets\n"
        + (f"model: {model}\n" if model else "")
        + extra
        + f'quality: {quality}\nquality_reason: tests\naspect_ratio: "{aspect}"\noutput_format: {output_format}\n'
        + "fixed:\n  wardrobe: cream sweater\n  environment: home office\n  lighting: morning light\n"
        + "shots:\n"
        + shots
    )


def hosted_model_project(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    batch: str,
    *,
    env: dict[str, str],
    refs: dict[str, tuple[int, int]] | None = None,
    settings: str = "",
) -> Path:
    """A project building `batch` with `provider` (fast retries, more `settings` lines for its
    section), its variables (`env`: key and base URL) set, and reference images of the given
    sizes under refs/ (PNG, or JPEG for .jpg)."""
    from PIL import Image

    write_project(
        root,
        batches={"covers": batch},
        personas={"mia": PERSONA},
        config=f"provider: {provider}\nproviders:\n  {provider}:\n    retries: {{attempts: 3, base_delay: 0.01}}\n"
        + settings,
    )
    (root / "refs").mkdir(exist_ok=True)
    for i, (name, size) in enumerate((refs or {}).items()):
        Image.new("RGB", size, (200, 40 * i % 256, 90)).save(
            root / "refs" / name, "JPEG" if name.endswith(".jpg") else "PNG"
        )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return root


def run_with_reader_gone(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    """`imgbuild ARGS | head` at its harshest: the reader closes the pipe before the first line
    is written. Returns the exit code and what went to stderr."""
    child = subprocess.Popen(
        [sys.executable, "-m", "imgbuild", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    with child.stderr:
        err = child.stderr.read().decode()
    return child.wait(timeout=60), err
