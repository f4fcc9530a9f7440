"""`imgbuild build`: run doit in-process over the project's tasks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from doit.doit_cmd import DoitMain

from imgbuild.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from imgbuild.resolve import resolve
from imgbuild.tasks import ProjectLoader, doit_config, make_generator

__all__ = ["build"]


class _Main(DoitMain):
    BIN_NAME = "imgbuild build"


def build(root: Path, *, selection: Sequence[str] = (), jobs: int | None = None, provider: str | None = None) -> int:
    """Generate every stale image (of the selected batches or tasks). 0 ok, 1 when any failed."""
    resolution = resolve(root, provider=provider)
    generator = make_generator(resolution)
    config = doit_config(resolution.project.config, resolution.provider)
    if jobs is not None:
        config["num_process"] = jobs
    try:
        result = _Main(ProjectLoader(resolution, generator, config), config_filenames=()).run(["run", *selection])
    except SystemExit as stop:  # the reporter stops a refused build with our exit code
        return int(stop.code or 0)
    finally:
        generator.close()
    # doit: 0 ok, 1 a task failed, 2 a task raised (a bug), 3 bad command line (e.g. an unknown task)
    return {0: EXIT_OK, 3: EXIT_INVALID}.get(result, EXIT_FAILED)
