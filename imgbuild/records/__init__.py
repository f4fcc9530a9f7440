"""Records: the one owner of every on-disk format (see docs/records.md and docs/architecture.md).

Nothing outside this package reads or writes asset.json, index.json, runs/, upload/, lock files,
the calls in flight or the build lock, and this package imports nothing from the rest of imgbuild.

Importing a module of the package (``imgbuild.records.errors`` from imgbuild.errors, say) does not
load the others: a name is imported from its module when it is first asked for here (PEP 562), so
a no-op build does not create the record classes it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {  # name -> the module that defines it
    "atomic_write_bytes": "imgbuild.records.atomic",
    "atomic_write_json": "imgbuild.records.atomic",
    "acquire_build_lock": "imgbuild.records.buildlock",
    "BadSourceDateEpoch": "imgbuild.records.clock",
    "duration": "imgbuild.records.clock",
    "source_date_epoch": "imgbuild.records.clock",
    "BrokenRecord": "imgbuild.records.errors",
    "BuildLocked": "imgbuild.records.errors",
    "RecordError": "imgbuild.records.errors",
    "lock_files": "imgbuild.records.lock",
    "lock_path": "imgbuild.records.lock",
    "read_lock": "imgbuild.records.lock",
    "remove_lock": "imgbuild.records.lock",
    "update_lock_entry": "imgbuild.records.lock",
    "write_lock": "imgbuild.records.lock",
    "Approval": "imgbuild.records.model",
    "ApprovedImage": "imgbuild.records.model",
    "AssetRecord": "imgbuild.records.model",
    "Candidate": "imgbuild.records.model",
    "CheckItem": "imgbuild.records.model",
    "EvidenceRef": "imgbuild.records.model",
    "History": "imgbuild.records.model",
    "HistoryEvent": "imgbuild.records.model",
    "JobRef": "imgbuild.records.model",
    "LockApproval": "imgbuild.records.model",
    "LockEntry": "imgbuild.records.model",
    "LockFile": "imgbuild.records.model",
    "LockImage": "imgbuild.records.model",
    "PendingCall": "imgbuild.records.model",
    "RequestFacts": "imgbuild.records.model",
    "Review": "imgbuild.records.model",
    "AssetStore": "imgbuild.records.store",
    "KeptImage": "imgbuild.records.store",
    "new_run_id": "imgbuild.records.store",
    "utc_now": "imgbuild.records.store",
    "UploadCache": "imgbuild.records.uploads",
}


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once
    return value


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
