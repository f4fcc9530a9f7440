"""doit integration: every paid request is a task, every batch a group with a final lock task.

Two ways in, one set of tasks:

* ``doit`` in a project folder loads the project's two-line dodo.py, which calls
  :func:`project_tasks` (plain doit: ``doit -n 8``, ``doit list``, ``doit info <task>``);
* ``imgbuild build`` runs doit in-process through :class:`ProjectLoader`.

Whether a task is up to date is decided by our records (:class:`StateIndex`), never by doit's
database, which lives in ``.imgbuild/`` and only remembers what doit itself needs.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from doit.cmd_base import TaskLoader2
from doit.exceptions import TaskFailed, UnmetDependency
from doit.loader import generate_tasks

from imgbuild.errors import EXIT_REFUSED, FatalError, InvalidInput, NotAProject, ProviderRefused
from imgbuild.generate import BuildStopped, Estimate, Generator
from imgbuild.log import setup_logging
from imgbuild.models import get_model
from imgbuild.project import find_project_root
from imgbuild.records.state import StateIndex, write_lock
from imgbuild.requests import ImageRequest
from imgbuild.resolve import Resolution, resolve
from imgbuild.spec.model import ProjectConfig
from imgbuild.spec.schema import install_editor_schemas

__all__ = [
    "LOCK_TASK",
    "ProgressReporter",
    "ProjectLoader",
    "doit_config",
    "image_task_name",
    "project_tasks",
    "task_dicts",
]

LOCK_TASK = "_lock"  # cannot clash with an asset id: those start with a letter or digit


def image_task_name(asset_id: str, candidate: int) -> str:
    return f"{asset_id}.c{candidate}"


def concurrency(config: ProjectConfig, provider: str) -> int:
    """Calls in flight at once: the provider's own setting, else the project's."""
    value = config.providers.get(provider, {}).get("concurrency", config.concurrency)
    return int(value)


def make_generator(resolution: Resolution) -> Generator:
    """The build's generator, with the provider's settings and the project's budget."""
    config = resolution.project.config
    generator = Generator(resolution.root, resolution.provider, config.providers.get(resolution.provider, {}))
    generator.budget = config.budget
    ProgressReporter.generator = generator
    return generator


def doit_config(config: ProjectConfig, provider: str) -> dict[str, Any]:
    """doit settings for a project: database in .imgbuild/, threads, our progress reporter."""
    state = config.state_dir
    state.mkdir(parents=True, exist_ok=True)
    install_editor_schemas(config.root)
    return {
        "dep_file": str(state / "doit.db"),
        "backend": "sqlite3",
        "par_type": "thread",
        "num_process": concurrency(config, provider),
        "reporter": ProgressReporter,
        "verbosity": 2,
        # One failed asset must not stop an overnight batch: the others go on (doit --continue).
        "continue": True,
    }


def task_dicts(resolution: Resolution, generator: Generator) -> Iterator[dict[str, Any]]:
    """The doit task dicts of a resolved project. They hold no secrets (`doit info` prints them)."""
    index = StateIndex(resolution)
    images, cost = 0, 0.0
    for batch_id, requests in resolution.requests.items():
        count = sum(r.candidates * r.max_images for r in requests)
        yield {"basename": batch_id, "name": None, "doc": f"{resolution.batch(batch_id).purpose} ({count} images)"}
        names = []
        for req in requests:
            for k in range(1, req.candidates + 1):
                name = image_task_name(req.asset_id, k)
                names.append(f"{batch_id}:{name}")
                done = index.candidate_done(req, k)
                if not done:  # priced only when stale: nothing extra on a no-op build
                    images += req.max_images
                    cost += get_model(req.model).price_per_image * req.max_images
                yield {
                    "basename": batch_id,
                    "name": name,
                    "doc": f"{req.asset_id} candidate {k}/{req.candidates} ({req.model}, {req.size})",
                    "actions": [(_image_action, [generator, req, k])],
                    # Decided now, from our records: a plain bool also spares doit an inspect.signature()
                    # per task, which is a fifth of a no-op build at 10,000 images.
                    "uptodate": [done],
                    "io": {"capture": False},
                    "meta": {"imgbuild": "image", "asset": req.asset_id, "candidate": k},
                }
        yield {
            "basename": batch_id,
            "name": LOCK_TASK,
            "doc": f"write {batch_id}.lock.json",
            "actions": [(_write_lock_action, [generator, index, resolution, batch_id])],
            "uptodate": [(_lock_current, [index, batch_id])],
            "task_dep": names,
            "io": {"capture": False},
            "meta": {"imgbuild": "lock"},
        }
    # Every stale image of the project, selected or not: the budget check errs on the safe side.
    generator.estimate = Estimate(images, cost)


class Refused(TaskFailed):
    """The provider (or the budget) refused: the whole build stops."""


class Skipped(TaskFailed):
    """Not started because the build was stopped by a refusal."""


def _image_action(generator: Generator, req: ImageRequest, candidate: int) -> TaskFailed | None:
    """Make one candidate; an expected failure becomes a clean doit failure, not a traceback."""
    try:
        generator.make_candidate(req, candidate)
    except BuildStopped as exc:
        return Skipped(str(exc))
    except ProviderRefused as exc:
        return Refused(str(exc))
    except FatalError as exc:
        return TaskFailed(str(exc))
    return None


def _write_lock_action(
    generator: Generator, index: StateIndex, resolution: Resolution, batch_id: str
) -> TaskFailed | None:
    try:
        generator.hold_build_lock()
    except FatalError as exc:
        return TaskFailed(str(exc))
    write_lock(index, resolution, batch_id)
    return None


def _lock_current(index: StateIndex, batch_id: str) -> bool:
    return index.lock_update(batch_id) is None


def project_tasks(folder: str | Path = ".") -> tuple[dict[str, Any], Callable[[], Iterator[dict[str, Any]]]]:
    """``DOIT_CONFIG, task_imgbuild = project_tasks()`` — what a project's dodo.py says.

    `folder` is found the way every imgbuild command finds its project (imgbuild.yaml at or above
    it, or a pyproject.toml's ``[tool.imgbuild] project``). The project is resolved here, when doit
    imports dodo.py (its config sets doit's), so invalid input or no project at all stops doit
    before anything runs or is written, with exit code 2 and the message."""
    setup_logging()
    try:
        root = find_project_root(Path(folder))
        resolution = resolve(root)
    except InvalidInput as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except NotAProject as exc:
        print(f"imgbuild: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    generator = make_generator(resolution)

    def task_imgbuild() -> Iterator[dict[str, Any]]:
        """imgbuild: generate every stale image of every batch."""
        with quiet_garbage_collector():
            yield from task_dicts(resolution, generator)

    return doit_config(resolution.project.config, resolution.provider), task_imgbuild


@contextmanager
def quiet_garbage_collector() -> Iterator[None]:
    """Keep the garbage collector out of task loading.

    Tens of thousands of long-lived requests and doit tasks are created here; each full
    collection on the way walks all of them again (a third of a no-op build at 10,000 images).
    They live until the process ends, so they are frozen out of later collections too."""
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


class ProjectLoader(TaskLoader2):
    """doit task loader for ``imgbuild build``: tasks from an already resolved project."""

    def __init__(self, resolution: Resolution, generator: Generator, config: dict[str, Any]) -> None:
        super().__init__()
        self.resolution = resolution
        self.generator = generator
        self._config = config

    def setup(self, opt_values: dict[str, Any]) -> None:
        pass

    def load_doit_config(self) -> dict[str, Any]:
        return dict(self._config)

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        with quiet_garbage_collector():
            tasks: list[Any] = generate_tasks("imgbuild", task_dicts(self.resolution, self.generator))
        return tasks


class ProgressReporter:
    """doit reporter: ``[done/total] asset`` for work done, silence for up-to-date tasks, a summary.

    doit calls it from worker threads (``par_type: thread``), hence the lock.
    """

    desc = "imgbuild progress"
    generator: Generator | None = None  # the build's generator, for its refusal and call counts

    def __init__(self, outstream: IO[str], options: dict[str, Any]) -> None:
        # doit's default outstream is the sys.stdout of the moment doit was imported; follow the
        # current one instead, unless the user chose a file with `--output-file`.
        name = getattr(outstream, "name", None)
        self._file = outstream if isinstance(name, str) and os.path.isfile(name) else None
        self.lock = threading.Lock()
        self.total = 0
        self.started_count = 0
        self.built = 0
        self.up_to_date = 0
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.refusal: str | None = None
        self.skipped = 0
        self.started = time.monotonic()

    @property
    def out(self) -> IO[str]:
        return self._file if self._file is not None else sys.stdout

    @staticmethod
    def _is_image(task: Any) -> bool:
        return bool(task.meta) and task.meta.get("imgbuild") == "image"

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str] | None) -> None:
        images = [t for t in tasks.values() if self._is_image(t)]
        chosen = set(selected_tasks or ())
        picked = [t for t in images if t.name in chosen or t.name.split(":", 1)[0] in chosen]
        self.total = len(picked) or len(images)

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if self.generator is not None and self.generator.refused is not None:
            return  # the build is stopping: this candidate will not be started
        if self._is_image(task):
            with self.lock:
                self.started_count += 1
                width = len(str(self.total))
                number = self.up_to_date + self.started_count
                self.out.write(f"[{number:>{width}}/{self.total}] {task.meta['asset']} #{task.meta['candidate']}\n")
                self.out.flush()

    def add_success(self, task: Any) -> None:
        if self._is_image(task):
            with self.lock:
                self.built += 1

    def add_failure(self, task: Any, fail: Any) -> None:
        with self.lock:
            if isinstance(fail, Refused):
                self.refusal = self.refusal or str(fail.message)
            elif isinstance(fail, Skipped):
                self.skipped += 1
            elif self._is_image(task):
                self.failures.append(f"{task.name}: {_failure_text(fail)}")
            elif task.meta and task.meta.get("imgbuild") == "lock":
                self.notes.append(f"{task.name} not run: the lock file keeps its old entries until every image is made")
            elif not isinstance(fail, UnmetDependency):  # a group task whose images failed says nothing new
                self.failures.append(f"{task.name}: {_failure_text(fail)}")

    def skip_uptodate(self, task: Any) -> None:
        if self._is_image(task):
            with self.lock:
                self.up_to_date += 1

    def skip_ignore(self, task: Any) -> None:
        pass

    def cleanup_error(self, exception: Any) -> None:
        self.out.write(f"cleanup error: {exception.get_msg()}\n")

    def runtime_error(self, msg: str) -> None:
        self.failures.append(msg)

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        seconds = time.monotonic() - self.started
        for failure in self.failures:
            self.out.write(f"FAILED {failure}\n")
        if self.refusal is None:
            for note in self.notes:
                self.out.write(f"{note}\n")
        generator = self.generator
        if generator is not None and generator.possibly_billed:
            self.out.write(
                f"note: {generator.possibly_billed} create calls ended without an answer and were retried; "
                "the provider may have billed them (see the runs' http.json)\n"
            )
        if self.refusal is not None:
            self.out.write(
                f"imgbuild: STOPPED: {self.refusal}\n"
                f"imgbuild: {self.built} generated before the stop, {self.skipped} not started, "
                f"{len(self.failures)} failed ({seconds:.1f} s)\n"
            )
            self.out.flush()
            # doit's exit codes cannot say "refused": leave with ours (doit has saved its state).
            raise SystemExit(EXIT_REFUSED)
        if self.built == 0 and not self.failures:
            self.out.write(f"imgbuild: all {self.up_to_date} images up to date, nothing to generate\n")
        else:
            self.out.write(
                f"imgbuild: {self.built} generated, {self.up_to_date} up to date, "
                f"{len(self.failures)} failed ({seconds:.1f} s)\n"
            )
        self.out.flush()


def _failure_text(fail: Any) -> str:
    if isinstance(fail, TaskFailed):  # an expected failure, already phrased for people
        return str(fail.message)
    return str(fail.get_msg()).strip()  # a bug: keep the whole traceback
