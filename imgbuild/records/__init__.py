"""Records: the one owner of every on-disk format (see docs/records.md and docs/architecture.md).

Nothing outside this package reads or writes asset.json, index.json, runs/, upload/, lock files,
the calls in flight or the build lock, and this package imports nothing from the rest of imgbuild.
"""

from __future__ import annotations

from imgbuild.records.atomic import atomic_write_bytes, atomic_write_json
from imgbuild.records.buildlock import acquire_build_lock
from imgbuild.records.clock import BadSourceDateEpoch, duration, source_date_epoch
from imgbuild.records.errors import BrokenRecord, BuildLocked, RecordError
from imgbuild.records.lock import lock_files, lock_path, read_lock, remove_lock, update_lock_entry, write_lock
from imgbuild.records.model import (
    Approval,
    ApprovedImage,
    AssetRecord,
    Candidate,
    CheckItem,
    EvidenceRef,
    History,
    HistoryEvent,
    JobRef,
    LockApproval,
    LockEntry,
    LockFile,
    LockImage,
    PendingCall,
    RequestFacts,
    Review,
)
from imgbuild.records.store import AssetStore, KeptImage, new_run_id, utc_now
from imgbuild.records.uploads import UploadCache

__all__ = [
    "Approval",
    "ApprovedImage",
    "AssetRecord",
    "AssetStore",
    "BadSourceDateEpoch",
    "BrokenRecord",
    "BuildLocked",
    "Candidate",
    "CheckItem",
    "EvidenceRef",
    "History",
    "HistoryEvent",
    "JobRef",
    "KeptImage",
    "LockApproval",
    "LockEntry",
    "LockFile",
    "LockImage",
    "PendingCall",
    "RecordError",
    "RequestFacts",
    "Review",
    "UploadCache",
    "acquire_build_lock",
    "atomic_write_bytes",
    "atomic_write_json",
    "duration",
    "lock_files",
    "lock_path",
    "new_run_id",
    "read_lock",
    "remove_lock",
    "source_date_epoch",
    "update_lock_entry",
    "utc_now",
    "write_lock",
]
