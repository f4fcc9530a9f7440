"""A build session: what all the candidates of one build share.

The project's build lock, the provider (made once, closed at the end), the budget check before
the first call, the stop latch (a refusal stops every later candidate), the pace of the calls
(:class:`Schedule`: rate limit and adaptive concurrency) and the build's counters.
Safe to share between doit's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from imgbuild.build.schedule import Schedule
from imgbuild.errors import AnotherBuildRunning, BudgetExceeded, BuildStop, NotStarted
from imgbuild.records.atomic import remove_stale_temp_files
from imgbuild.records.buildlock import acquire_build_lock
from imgbuild.records.errors import BuildLocked

if TYPE_CHECKING:
    from imgbuild.build.uploads import ReferenceUploads
    from imgbuild.models import Pricing
    from imgbuild.providers import Provider
    from imgbuild.records import AssetStore
    from imgbuild.requests import ImageRequest
    from imgbuild.shard import Shard

__all__ = ["BuildSession", "Estimate", "StaleWork"]

StaleWork = tuple["ImageRequest", tuple[int, ...]]  # a request and the candidates a build would make


@dataclass(frozen=True)
class Estimate:
    """What the images a build will make would cost at list prices."""

    images: int
    cost: float


class BuildSession:
    def __init__(self, root: Path, provider_name: str, settings: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self.provider_name = provider_name
        self.settings = settings or {}
        rate = self.settings.get("rate_limit")
        self.schedule = Schedule(float(rate) if rate else None)
        self._store: AssetStore | None = None
        self._uploads: ReferenceUploads | None = None
        self._made = threading.Lock()  # guards making the two above, once
        self.stopped: BuildStop | None = None
        self.budget: float | None = None
        self.stale: dict[str, StaleWork] = {}  # asset id → what a build of the whole project makes
        self.project_estimate: Estimate | None = None  # every stale image of the project
        self.pricing: Pricing | None = None  # the route's prices (None: each request's provider)
        self.estimate: Estimate | None = None  # the images this build makes (its selection)
        self.shard: Shard | None = None  # a shard builds its own assets and writes no lock file
        self.all_shards: Callable[[], Estimate] | None = None  # a shard: what every shard makes
        self.possibly_billed = 0  # create calls that ended without an answer (see docs/records.md)
        self._spent = 0.0  # list price of the images made so far
        self._provider: Provider | None = None
        self._lock = threading.Lock()
        self._build_lock: IO[str] | None = None

    @property
    def store(self) -> AssetStore:
        """The build's one record store (made when first needed: a no-op build never needs it, nor
        the record classes it loads)."""
        if self._store is None:
            with self._made:
                if self._store is None:
                    from imgbuild.records.store import AssetStore

                    self._store = AssetStore(self.root)
        return self._store

    @property
    def uploads(self) -> ReferenceUploads:
        """Reference images made reachable for the provider, once per build."""
        if self._uploads is None:
            store = self.store
            with self._made:
                if self._uploads is None:
                    from imgbuild.build.uploads import ReferenceUploads

                    self._uploads = ReferenceUploads(store, self.provider_name)
        return self._uploads

    def threads(self, calls: int) -> int:
        """doit's threads for a build of at most `calls` calls in flight (decision 65). A hosted
        provider's answers come back together, and a thread spends a few ms of CPU (serialised by
        the GIL) recording its images before it could start its next call: with twice the
        threads, the schedule capping the calls in flight and recording yielding to calls that
        can start (Schedule.let_calls_start), the next calls start first. The preview provider
        makes its images on this machine's CPU: more threads than `calls` would not help it."""
        calls = max(1, calls)
        self.schedule.cap = calls
        return calls if self.provider_name == "preview" else 2 * calls

    def provider(self) -> Provider:
        """The build's provider, set up on first use: build lock, budget, then the provider.
        NotStarted once the build was stopped."""
        with self._lock:
            if self.stopped is not None:
                raise NotStarted(f"not run: {self.stopped}")
            try:
                self._hold_build_lock()
                if self._provider is None:
                    self._check_budget()
                    from imgbuild.providers import create_provider

                    self._provider = create_provider(self.provider_name, self.root, self.settings)
                    pace = getattr(self._provider, "pace", None)  # hosted providers: rate limit, 429s
                    if callable(pace):
                        pace(self.schedule)
            except BuildLocked as exc:  # one line for the build, not one per image
                self.stopped = AnotherBuildRunning(str(exc))
                raise self.stopped from None
            except BuildStop as exc:
                self.stopped = exc
                raise
            return self._provider

    def hold_build_lock(self) -> None:
        """Take the project's build lock for the rest of this build (writing a lock file needs it
        too: approve / reject must not change records under the writer)."""
        with self._lock:
            self._hold_build_lock()

    def _hold_build_lock(self) -> None:
        if self._build_lock is None:
            self._build_lock = acquire_build_lock(self.store.state_dir)
            remove_stale_temp_files(self.store.temp_dir)
            self.store.drop_closed_calls()
            self.store.keep_records()  # no other process writes them while the lock is held

    def _check_budget(self) -> None:
        if self.budget is None or self.provider_name == "preview":
            return
        # n shards spend from one budget: a shard counts every stale image of every shard.
        estimate = self.all_shards() if self.all_shards is not None else self.estimate
        if estimate is None:
            return
        if estimate.cost > self.budget:
            whole = self.project_estimate
            if self.all_shards is not None:
                of_all = f" (its {self.shard.count if self.shard else 'n'} shards together)"
            elif whole is not None and whole.images != estimate.images:
                of_all = f" (the whole project: {whole.images} images, about ${whole.cost:.2f})"
            else:
                of_all = ""
            raise BudgetExceeded(
                f"this build would make {estimate.images} images for about ${estimate.cost:.2f} "
                f"at list prices{of_all}, over the budget of ${self.budget:.2f} in imgbuild.yaml; "
                "build a part of it (batch ids or task globs such as 'BATCH:*park*'; "
                "`imgbuild plan SELECTION` prices one) or raise `budget:`"
            )

    def stop(self, exc: BuildStop) -> None:
        """Stop the build: every later candidate is skipped."""
        with self._lock:
            if self.stopped is None:
                self.stopped = exc

    def count_made(self, cost: float) -> None:
        """Images were made and kept: add their list price to the build's spend."""
        with self._lock:
            self._spent += cost

    def spent(self) -> float:
        """The list price of the images this build made so far."""
        return self._spent

    def count_possibly_billed(self, n: int) -> None:
        with self._lock:
            self.possibly_billed += n

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
        if self._build_lock is not None:
            self._build_lock.close()
            self._build_lock = None
