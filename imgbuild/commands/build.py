"""`imgbuild build`: run doit in-process over the project's tasks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from doit.doit_cmd import DoitMain

from imgbuild import noop
from imgbuild.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, UsageError
from imgbuild.resolve import resolve
from imgbuild.shard import chosen_shard, select_shard
from imgbuild.tasks import ProjectLoader, check_selection, doit_config, make_session, quiet_garbage_collector

__all__ = ["build"]


class _Main(DoitMain):
    BIN_NAME = "imgbuild build"


class _Loader(ProjectLoader):
    """The project's tasks, and a selection that names nothing refused as `imgbuild plan` refuses
    it (exit 2): doit's own message would point at `imgbuild build list`, which does not exist."""

    refused: UsageError | None = None

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        tasks = super().load_tasks(cmd, pos_args)
        if pos_args:
            try:
                check_selection(self.resolution, tasks, pos_args)
            except UsageError as exc:
                self.refused = exc
                raise SystemExit(EXIT_INVALID) from None  # out of doit's run, which prints any error itself
        return tasks


def build(
    root: Path,
    *,
    selection: Sequence[str] = (),
    jobs: int | None = None,
    provider: str | None = None,
    shard: str | None = None,
) -> int:
    """Generate every stale image (of the selected batches or tasks, of one shard). The exit code
    is the one plain doit ends with too (the progress reporter chooses it): 0 ok, 1 a failed image,
    3 a refusal, 70 a bug, 130 interrupted."""
    chosen = chosen_shard(shard)
    # A build of everything skips, as plain doit does, the batches the no-op index vouches for; a
    # selection or a shard (whose budget counts the whole project) resolves every batch.
    lean = not selection and chosen is None
    with quiet_garbage_collector():  # as under plain doit: long-lived objects, no collections
        source = (
            noop.source(root, noop.BUILD, provider=provider) if lean else noop.Source(resolve(root, provider=provider))
        )
    resolution = source.resolution
    session = make_session(resolution, chosen)
    config = doit_config(resolution.project.config, session)
    config["reporter"].current = source.vouched
    # More threads than calls in flight for a hosted provider (decision 65); plain `doit -n N`
    # keeps N threads, each one call.
    config["num_process"] = session.threads(jobs if jobs is not None else int(config["num_process"]))
    loader = _Loader(select_shard(resolution, chosen), session, config)
    try:
        result = _Main(loader, config_filenames=()).run(["run", *selection])
    except SystemExit as stop:  # the reporter ends every run with the build's exit code
        if loader.refused is not None:
            raise loader.refused from None
        return int(stop.code or 0)
    finally:
        session.close()
    # Only when doit did not run the tasks: 3 is a bad command line (e.g. an unknown task).
    return {0: EXIT_OK, 3: EXIT_INVALID}.get(result, EXIT_FAILED)
