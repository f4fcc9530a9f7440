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
import queue
import sys
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.cmd_base import TaskLoader2
from doit.control import TaskControl
from doit.exceptions import InvalidCommand, TaskFailed, UnmetDependency
from doit.loader import generate_tasks
from doit.runner import JobHold, MThreadRunner

from imgbuild import noop
from imgbuild.error_handler import write_crash_log
from imgbuild.errors import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXPECTED,
    BuildStop,
    InvalidInput,
    NotStarted,
    UsageError,
    describe,
)
from imgbuild.log import setup_logging
from imgbuild.progress import BuildProgress
from imgbuild.project import find_project_root
from imgbuild.records.atomic import confined
from imgbuild.records.clock import source_date_epoch
from imgbuild.resolve import Resolution, resolve
from imgbuild.shard import Shard, chosen_shard, project_estimate, select_shard
from imgbuild.spec.model import ProjectConfig
from imgbuild.spec.schema import install_editor_schemas

if TYPE_CHECKING:
    # Imported where they are used: a no-op build that the no-op index answers makes no image
    # task, and need not load the records, the requests or the providers (a third of its time).
    from imgbuild.build import BuildSession, Estimate, StaleWork
    from imgbuild.models import Pricing
    from imgbuild.requests import ImageRequest
    from imgbuild.state import LockWriter

__all__ = [
    "LOCK_TASK",
    "ProgressReporter",
    "ProjectLoader",
    "doit_config",
    "image_task_name",
    "price",
    "project_tasks",
    "select",
    "selected_images",
    "selects_all",
    "task_dicts",
    "task_name",
]

LOCK_TASK = "_lock"  # cannot clash with an asset id: those start with a letter or digit


def image_task_name(asset_id: str, candidate: int) -> str:
    return f"{asset_id}.c{candidate}"


def concurrency(config: ProjectConfig, provider: str) -> int:
    """Calls in flight at once: the provider's own setting, else the project's."""
    value = config.providers.get(provider, {}).get("concurrency", config.concurrency)
    return int(value)


def make_session(resolution: Resolution, shard: Shard | None = None) -> BuildSession:
    """The build's session, with the provider's settings and the project's budget. A shard's
    budget check counts the stale images of the whole (unselected) `resolution`: n shards
    together then spend no more than the budget."""
    from imgbuild.build.session import BuildSession, Estimate

    source_date_epoch()  # a malformed $SOURCE_DATE_EPOCH stops the build here, not at its first record
    config = resolution.project.config
    session = BuildSession(resolution.root, resolution.provider, config.providers.get(resolution.provider, {}))
    session.budget = config.budget
    if shard is not None:
        session.shard = shard
        session.all_shards = lambda: Estimate(*project_estimate(resolution))
    return session


def doit_config(config: ProjectConfig, session: BuildSession) -> dict[str, Any]:
    """doit settings for a project: database in .imgbuild/, threads, our progress reporter."""
    state = config.state_dir
    confined(state / "doit.db", config.root)  # doit's database and our records: never through a link out
    state.mkdir(parents=True, exist_ok=True)
    install_editor_schemas(config.root)
    use_quiet_thread_runner()
    return {
        "dep_file": str(state / "doit.db"),
        "backend": "sqlite3",
        "par_type": "thread",
        "num_process": concurrency(config, session.provider_name),
        "reporter": ProgressReporter(session),
        "verbosity": 2,
        # One failed asset must not stop an overnight batch: the others go on (doit --continue).
        "continue": True,
    }


def use_quiet_thread_runner() -> None:
    """Run doit's threads (``par_type: thread``) with :class:`QuietThreadRunner`. doit picks its
    runner class inside its `run` command, with no setting for it: the class it looks up there
    is replaced, for this process (imgbuild build, or plain doit once dodo.py has loaded)."""
    import doit.cmd_run

    doit.cmd_run.MThreadRunner = QuietThreadRunner


class _JobQueue(queue.Queue[Any]):
    """doit's queue of jobs for its threads, less the "hold on" jobs: a thread given one only
    goes back to waiting on the queue, which it does without being woken for it."""

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if not isinstance(item, JobHold):
            super().put(item, block, timeout)


# A thread waiting for the GIL asks the one holding it to let go once per switch interval
# (Python's default: 5 ms). A hosted build's threads wait on the network and hold the GIL only
# between system calls, which let it go anyway; when a round of answers comes back together,
# hundreds of them queue for it, and at 5 ms each wakes 200 times a second to ask, each time a
# futex call and a context switch. 20 ms cut the CPU per hosted image by about a tenth at 128
# calls in flight (docs/performance.md) and changes nothing a thread waits on the network for.
SWITCH_INTERVAL = 0.02


class QuietThreadRunner(MThreadRunner):
    """doit's thread runner without the wake-ups that do nothing.

    Once every task is handed out and only tasks waiting for others remain (a batch's lock file
    waits for all its images), doit answers each finished task by asking its dispatcher again
    for every idle thread, and sends each idle thread a "hold on" job, which the thread takes
    and goes back to waiting. That is 1 + 2 + ... + T wake-ups over the last T tasks of T
    threads: 131,000 for the last 512 images of a build at 256 calls in flight, each a thread
    woken under the GIL — the larger part of that build's CPU. Here no hold is sent, and the
    dispatcher, which cannot change its answer until a task finishes, is asked once."""

    Queue = staticmethod(_JobQueue)
    _holding = False  # the dispatcher said "hold on" and no task finished since

    def run_all(self, task_dispatcher: Any) -> Any:
        """doit's run, with the interpreter's thread switch interval at SWITCH_INTERVAL meanwhile
        (and back as it was after): see there."""
        before = sys.getswitchinterval()
        sys.setswitchinterval(max(before, SWITCH_INTERVAL))
        try:
            return super().run_all(task_dispatcher)
        finally:
            sys.setswitchinterval(before)

    def get_next_job(self, completed: Any) -> Any:
        if completed is None and self._holding and not self._stop_running:
            self.free_proc += 1  # counted as doit counts a thread told to hold on
            return JobHold()
        job = super().get_next_job(completed)
        self._holding = isinstance(job, JobHold)
        return job


def task_dicts(resolution: Resolution, session: BuildSession) -> Iterator[dict[str, Any]]:
    """The doit task dicts of a resolved project. They hold no secrets (`doit info` prints them).

    A batch found wholly current is entered in the no-op index (imgbuild.cache), so the next
    no-op build hands doit nothing for it."""
    if not resolution.requests:  # the no-op index vouched for every batch
        # Nothing to price, so `session.pricing` stays unset and the model registry unloaded.
        session.stale = {}
        session.project_estimate = session.estimate = price({})
        return
    from imgbuild.state import LockWriter, StateIndex

    index = StateIndex(resolution)
    locks = LockWriter(index)
    stale: dict[str, StaleWork] = {}
    started_ns = time.time_ns()
    for batch_id, requests in resolution.requests.items():
        count = sum(r.candidates * r.max_images for r in requests)
        # Decided now, from our records: a plain bool also spares doit an inspect.signature() per
        # task, which is a fifth of a no-op build at 10,000 images.
        done = [[index.candidate_done(req, k) for k in range(1, req.candidates + 1)] for req in requests]
        everything = all(all(d) for d in done)
        yield batch_task(resolution, batch_id, count, uptodate=(_batch_current, [locks, batch_id, everything]))
        names = []
        current = True
        for req, made in zip(requests, done, strict=True):
            todo = []
            for k in range(1, req.candidates + 1):
                name = image_task_name(req.asset_id, k)
                names.append(f"{batch_id}:{name}")  # = task_name(req, k)
                if not made[k - 1]:
                    todo.append(k)
                yield {
                    "basename": batch_id,
                    "name": name,
                    "doc": f"{req.asset_id} candidate {k}/{req.candidates} ({req.model}, {req.size})",
                    "actions": [(_image_action, [session, req, k])],
                    "uptodate": [made[k - 1]],
                    "io": {"capture": False},
                    "meta": {"imgbuild": "image", "asset": req.asset_id, "candidate": k},
                }
            if todo:  # priced only when stale: nothing extra on a no-op build
                stale[req.asset_id] = (req, tuple(todo))
            current = current and not todo and index.vouched(req)
        if session.shard is not None:
            continue  # a lock file holds the whole batch: `imgbuild merge` writes it (imgbuild/shard.py)
        if current and _lock_current(locks, batch_id):
            noop.enter(resolution, index, batch_id, started_ns)
        yield {
            "basename": batch_id,
            "name": LOCK_TASK,
            "doc": f"write {batch_id}.lock.json",
            "actions": [(_write_lock_action, [session, locks, batch_id])],
            "uptodate": [(_lock_current, [locks, batch_id])],
            "task_dep": names,
            "io": {"capture": False},
            "meta": {"imgbuild": "lock"},
        }
    # Until the reporter knows the selection, the budget counts every stale image of the project.
    session.stale = stale
    session.pricing = resolution.pricing
    session.project_estimate = session.estimate = price(stale, pricing=session.pricing)


def price(
    stale: Mapping[str, StaleWork], selected: Container[str] | None = None, pricing: Pricing | None = None
) -> Estimate:
    """What making the stale candidates would cost at list prices (USD, on `pricing`'s route): all
    of them, or only those whose image task (``batch:asset.cK``) is `selected`. An identity set
    counts at `max_images`."""
    work: Iterable[StaleWork] = stale.values()
    if selected is not None:
        work = [
            (req, tuple(k for k in todo if task_name(req, k) in selected)) for req, todo in stale.values()
        ]  # fmt: skip
    from imgbuild.build.session import Estimate

    if not stale:
        return Estimate(0, 0.0)  # every no-op build: nothing to price
    from imgbuild.state import estimate

    images, cost, _ = estimate(work, pricing)
    return Estimate(images, cost)


def task_name(req: ImageRequest, candidate: int) -> str:
    """The full doit name of a candidate's image task."""
    return f"{req.batch}:{image_task_name(req.asset_id, candidate)}"


def selected_images(tasks: Mapping[str, Any], selected: Sequence[str]) -> list[Any]:
    """The image tasks a doit run of the `selected` task names executes: those selected and every
    task they depend on (a batch's group task and its lock task depend on each of its images)."""
    if selects_all(tasks, selected):  # the common case, without walking the dependencies
        return [task for task in tasks.values() if ProgressReporter._is_image(task)]
    seen: set[str] = set()
    pending = list(selected)
    while pending:
        name = pending.pop()
        if name not in seen and name in tasks:
            seen.add(name)
            pending.extend(tasks[name].task_dep)
    return [tasks[name] for name in seen if ProgressReporter._is_image(tasks[name])]


def selects_all(tasks: Mapping[str, Any], selected: Sequence[str]) -> bool:
    """Whether `selected` names every task (doit's selection when none was given)."""
    return len(selected) == len(tasks) and tasks.keys() == set(selected)


def select(resolution: Resolution, selection: Sequence[str]) -> set[str]:
    """The image task names (stale or not) that `imgbuild build SELECTION` would run, by doit's
    own rules: batch ids, task names and globs such as ``'covers:*park*'``, with every task they
    depend on. A name that is none of these is a usage error."""
    tasks = generate_tasks("imgbuild", task_dicts(resolution, make_session(resolution)))
    control = check_selection(resolution, tasks, selection)
    return {task.name for task in selected_images(control.tasks, control.selected_tasks)}


def check_selection(resolution: Resolution, tasks: list[Any], selection: Sequence[str]) -> TaskControl:
    """doit's control of `tasks` with `selection` processed; a name that is no batch, task or glob
    of the project is a usage error (plan and build say the same)."""
    control = TaskControl(tasks)
    try:
        control.process(list(selection))
    except InvalidCommand as exc:
        raise UsageError(
            f"nothing in this project is called {exc.not_found!r}: select batch ids or task globs such as"
            f" '{resolution.project.batches[0].id}:*' (`imgbuild ls` lists the assets)"
            if resolution.project.batches
            else f"nothing in this project is called {exc.not_found!r}: the project has no batches"
        ) from None
    return control


def lean_run(argv: list[str]) -> bool:
    """Whether doit, given `argv`, runs every default task without forcing any (``doit``,
    ``doit -n 8``, ``doit run --continue``), by doit's own rules: a first argument naming a
    command runs that command; the rest is parsed with `run`'s options. Then up-to-date images
    need no task. `doit list`, `doit info X`, `doit X` or ``doit -a`` get every task."""
    from doit.cmd_base import DodoTaskLoader, DoitCmdBase
    from doit.cmd_run import Run
    from doit.cmdparse import CmdOption, CmdParse, CmdParseError
    from doit.doit_cmd import DoitMain

    args = list(argv)
    if args and args[0] in {cmd.get_name() for cmd in DoitMain.DOIT_CMDS}:
        if args[0] != "run":
            return False
        args = args[1:]
    options = [*DoitCmdBase.base_options, *DodoTaskLoader.cmd_options, *Run.cmd_options]
    parser = CmdParse([o if isinstance(o, CmdOption) else CmdOption(o) for o in options])
    try:
        params, positional = parser.parse(args)
    except CmdParseError:
        return False  # doit says what is wrong
    return not positional and not params["always"]


def _doit_argv() -> list[str] | None:
    """doit's arguments when this process is doit itself (``doit``, ``python -m doit``), else None."""
    program = Path(sys.argv[0]) if sys.argv else Path()
    if program.name == "doit" or (program.name == "__main__.py" and program.parent.name == "doit"):
        return sys.argv[1:]
    return None


def batch_task(resolution: Resolution, batch_id: str, images: int, *, uptodate: Any) -> dict[str, Any]:
    """The group task of a batch: `doit <batch>` builds it; `doit info <batch>` says whether it is
    up to date (exit 0 when it is); `doit clean <batch>` says why nothing is removed."""
    return {
        "basename": batch_id,
        "name": None,
        "doc": f"{resolution.batch(batch_id).purpose} ({images} images)",
        "uptodate": [uptodate],
        "clean": [(_clean_action, [batch_id])],
    }


def current_batch_tasks(resolution: Resolution, counts: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The group tasks of the batches the no-op index vouches for: no subtasks, up to date, so
    that the default tasks (every batch) exist in a lean run too."""
    for batch_id, images in counts.items():
        yield batch_task(resolution, batch_id, images, uptodate=True)


def _batch_current(locks: LockWriter, batch_id: str, images_done: bool) -> bool:
    return images_done and _lock_current(locks, batch_id)


def _clean_action(batch_id: str) -> None:
    print(
        f"{batch_id}: nothing removed: images are paid work and stay with their records"
        " (`imgbuild prune` removes asset folders no manifest declares;"
        " `doit forget` resets only doit's own database)"
    )


class Refused(TaskFailed):
    """The build stops (a refusal, the budget, another build): no later candidate starts."""

    def __init__(self, msg: str, cause: Exception) -> None:
        super().__init__(msg)
        self.exit_code = int(getattr(cause, "exit_code", EXIT_FAILED))


class Skipped(TaskFailed):
    """Not started because the build was stopped by a refusal."""


def _image_action(session: BuildSession, req: ImageRequest, candidate: int) -> TaskFailed | None:
    """Make one candidate; an expected failure becomes a clean doit failure, not a traceback."""
    try:
        from imgbuild.build.candidate import make_candidate

        make_candidate(session, req, candidate)
    except NotStarted as exc:
        return Skipped(str(exc))
    except BuildStop as exc:
        return Refused(str(exc), exc)
    except EXPECTED as exc:
        return TaskFailed(describe(exc))
    return None


def _write_lock_action(session: BuildSession, locks: LockWriter, batch_id: str) -> TaskFailed | None:
    try:
        session.hold_build_lock()
    except EXPECTED as exc:  # another build holds the lock: this one stops
        return Refused(str(exc), exc)
    try:
        locks.write(batch_id)
    except EXPECTED as exc:
        return TaskFailed(describe(exc))
    return None


def _lock_current(locks: LockWriter, batch_id: str) -> bool:
    try:
        return locks.update(batch_id) is None
    except EXPECTED:
        return False  # the action says what is wrong


def project_tasks(folder: str | Path = ".") -> tuple[dict[str, Any], Callable[[], Iterator[dict[str, Any]]]]:
    """``DOIT_CONFIG, task_imgbuild = project_tasks()`` — what a project's dodo.py says.

    `folder` is found the way every imgbuild command finds its project (imgbuild.yaml at or above
    it, or a pyproject.toml's ``[tool.imgbuild] project``). The project is resolved here, when doit
    imports dodo.py (its config sets doit's), so invalid input or no project at all stops doit
    before anything runs or is written, with exit code 2 and the message."""
    setup_logging()
    try:
        root = find_project_root(Path(folder))
        argv = _doit_argv()
        shard = chosen_shard()  # $IMGBUILD_SHARD: plain doit has no --shard
        with quiet_garbage_collector():  # the cached project and the lock files: long-lived objects
            # A shard's budget counts the whole project: a shard's run resolves every batch.
            lean = shard is None and argv is not None and lean_run(argv)
            source = noop.source(root, noop.BUILD) if lean else noop.Source(resolve(root))
        resolution = source.resolution
        session = make_session(resolution, shard)
    except InvalidInput as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except EXPECTED as exc:  # nothing could start: an OS error here is exit 2, like bad input
        print(f"imgbuild: error: {describe(exc)}", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", EXIT_INVALID)) from None
    try:
        config = doit_config(resolution.project.config, session)
    except EXPECTED as exc:  # the state folder cannot be made or is a link out: nothing started
        print(f"imgbuild: error: {describe(exc)}", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", EXIT_INVALID)) from None

    def task_imgbuild() -> Iterator[dict[str, Any]]:
        """imgbuild: generate every stale image of every batch."""
        with quiet_garbage_collector():
            yield from current_batch_tasks(resolution, dict(source.counts))
            yield from task_dicts(select_shard(resolution, shard), session)

    config["reporter"].current = source.vouched
    # Every batch (the same as every task): `doit forget` without a task then says what to pass
    # instead of crashing, and `doit clean` reaches every batch.
    config["default_tasks"] = [b.id for b in resolution.project.batches]
    return config, task_imgbuild


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

    def __init__(self, resolution: Resolution, session: BuildSession, config: dict[str, Any]) -> None:
        super().__init__()
        self.resolution = resolution
        self.session = session
        self._config = config

    def setup(self, opt_values: dict[str, Any]) -> None:
        pass

    def load_doit_config(self) -> dict[str, Any]:
        return dict(self._config)

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        with quiet_garbage_collector():
            tasks: list[Any] = generate_tasks("imgbuild", task_dicts(self.resolution, self.session))
        return tasks


class ProgressReporter:
    """doit reporter: the build's progress (imgbuild.progress: a live line in a terminal, periodic
    lines in a log, each failed image as it fails), a summary that adds up, and the build's exit
    code, the same under plain doit and `imgbuild build`.

    doit calls it from worker threads (``par_type: thread``), hence the lock. The summary always
    accounts for every selected image: generated + up to date + failed + not started = total.
    """

    desc = "imgbuild progress"

    def __init__(self, session: BuildSession) -> None:
        self.session = session
        self.lock = threading.Lock()
        self.total = 0
        self.built = 0
        self.up_to_date = 0
        self.failures: list[str] = []
        self.failed = 0  # images
        self.bugs: list[str] = []
        self.notes: list[str] = []
        self.stop: Refused | None = None
        self.started = time.monotonic()
        self.progress: BuildProgress | None = None
        self.current = 0  # images the no-op index found current: no task was made for them

    out = property(lambda self: sys.stdout)  # doit's outstream is the stdout of its import time

    @staticmethod
    def _is_image(task: Any) -> bool:
        return bool(task.meta) and task.meta.get("imgbuild") == "image"

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str] | None) -> None:
        names = list(tasks) if selected_tasks is None else selected_tasks
        picked = selected_images(tasks, names)
        self.total = len(picked) + self.current  # + the images the no-op index vouched for
        self.up_to_date = self.current
        if self.session.stale and not selects_all(tasks, names):
            # Before the first call: the budget counts what this run will make, not the whole project.
            self.session.estimate = price(self.session.stale, {task.name for task in picked}, self.session.pricing)
        self.started = time.monotonic()
        session = self.session
        self.progress = BuildProgress(self.out, in_flight=lambda: session.schedule.in_flight, spent=session.spent)

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        if self.progress is not None and self._is_image(task):
            self.progress.start(self.total - self.current)  # what doit was handed; the index's are done

    def add_success(self, task: Any) -> None:
        if self._is_image(task):
            with self.lock:
                self.built += 1
            if self.progress is not None:
                self.progress.made()

    def add_failure(self, task: Any, fail: Any) -> None:
        with self.lock:
            if isinstance(fail, Refused):
                self.stop = self.stop or fail
            elif isinstance(fail, Skipped | UnmetDependency):
                pass  # counted as not started
            elif self._is_image(task):
                if not isinstance(fail, TaskFailed):  # an exception in our code: a bug
                    self.bugs.append(str(fail.get_msg()))
                self.failures.append(f"{task.name}: {_failure_text(fail)}")
                self.failed += 1
                if self.progress is not None:
                    self.progress.failed_image(f"{task.meta['asset']} #{task.meta['candidate']}")
            elif task.meta and task.meta.get("imgbuild") == "lock":
                if not isinstance(fail, TaskFailed):
                    self.bugs.append(str(fail.get_msg()))
                    self.notes.append(
                        f"{task.name} not run: the lock file keeps its old entries until every image is made"
                    )
                else:  # the lock file could not be written (a full disk, a refused folder): the build failed
                    self.failures.append(f"{task.name}: {_failure_text(fail)}")
            else:
                self.failures.append(f"{task.name}: {_failure_text(fail)}")

    def skip_uptodate(self, task: Any) -> None:
        if self._is_image(task):
            with self.lock:
                self.up_to_date += 1
            if self.progress is not None:
                self.progress.up_to_date()

    def skip_ignore(self, task: Any) -> None:
        pass

    def cleanup_error(self, exception: Any) -> None:
        self.out.write(f"cleanup error: {exception.get_msg()}\n")

    def runtime_error(self, msg: str) -> None:
        self.failures.append(msg)

    def teardown_task(self, task: Any) -> None:
        pass

    def complete_run(self) -> None:
        """Print the summary and leave with the build's exit code (doit's own codes cannot say
        "refused" or "interrupted", and would call one failed image 2). doit has saved its state."""
        interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        seconds = time.monotonic() - self.started
        if self.progress is not None:
            self.progress.close()
        for failure in self.failures:
            self.out.write(f"FAILED {failure}\n")
        if self.stop is None and not interrupted:
            for note in self.notes:
                self.out.write(f"{note}\n")
        if self.session.possibly_billed:
            self.out.write(
                f"note: {self.session.possibly_billed} create calls ended without an answer; "
                "the provider may have billed them (see `imgbuild ls --state interrupted`)\n"
            )
        schedule = self.session.schedule
        if schedule.throttles:
            self.out.write(
                f"note: the provider answered 429 (too many requests) to {schedule.throttles} calls; "
                f"calls in flight went down to {schedule.lowest} and were retried (none is billed twice)\n"
            )
        if self.session.shard is not None and not interrupted:
            self.out.write(
                f"imgbuild: shard {self.session.shard}: no lock file written; once every shard is in one tree,"
                " `imgbuild merge` writes them\n"
            )
        failed = self.failed
        not_started = max(0, self.total - self.built - self.up_to_date - failed)
        counts = f"{self.built} generated, {self.up_to_date} up to date, {failed} failed, {not_started} not started"
        if interrupted:
            self.out.write(f"imgbuild: INTERRUPTED: {counts} ({seconds:.1f} s); run doit again to finish\n")
            code = EXIT_INTERRUPTED
        elif self.stop is not None:
            self.out.write(f"imgbuild: STOPPED: {self.stop.message}\nimgbuild: {counts} ({seconds:.1f} s)\n")
            code = self.stop.exit_code
        elif self.built == 0 and not self.failures:
            self.out.write(f"imgbuild: all {self.up_to_date} images up to date, nothing to generate\n")
            code = EXIT_OK
        else:
            self.out.write(f"imgbuild: {counts} ({seconds:.1f} s)\n")
            code = EXIT_FAILED if self.failures else EXIT_OK
        if self.bugs:
            log = write_crash_log(self.session.store.state_dir / "logs", "\n".join(self.bugs))
            self.out.write(f"imgbuild: this is a bug; the details are in {log}\n")
            code = EXIT_BUG
        self.out.flush()
        raise SystemExit(code)


def _failure_text(fail: Any) -> str:
    if isinstance(fail, TaskFailed):  # an expected failure, already phrased for people
        return str(fail.message)
    lines = str(fail.get_msg()).strip().splitlines()
    return lines[-1] if lines else "unexpected error"  # a bug: the whole traceback goes to the crash log
