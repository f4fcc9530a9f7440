"""The edit rule: a changed asset with an approved image is edited from it, if only editable
attributes changed; otherwise it is regenerated.

The manifests give each asset its *base* request. When the asset has an approval whose request
differs from the base, the two are compared field by field:

* only attribute values changed, and every changed attribute is in the shot's ``editable`` list
  → the request becomes an **edit** of the approved image: the family's edit mode, the approved
  image as the first reference (by content hash), and the prompt prefixed with what to change;
* anything else changed (a non-editable attribute, the persona, the template, the model, the
  size...) → the base request stands: the asset is **regenerated** from scratch;
* nothing changed but the approved request was itself such an edit → that edit request stands
  (it is what the approval is for), so approving an edited candidate makes the asset current.

The decision is recomputed on every load from the approval and the manifests; it is not stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbuild.models import endpoint_key, get_model, mode_for
from imgbuild.records import AssetStore, BrokenRecord, LockApproval, LockFile
from imgbuild.requests import ImageRequest, Reference, request_hash, sha256_text

__all__ = ["EditDecision", "apply_edit_rule", "approval_of", "decide"]

# Fields that must be equal for an edit; anything that changes the picture beyond attributes.
_SAME_FOR_EDIT = ("provider", "aspect_ratio", "size", "output_format", "quality_settings", "max_images", "template")


@dataclass(frozen=True)
class EditDecision:
    """What the edit rule made of one asset with an approval."""

    kind: str  # "approved" (the approval is for the current request), "edit", "regenerate"
    reasons: tuple[str, ...]
    approved_candidate: str  # "2", or "2.3" for image 3 of an identity set

    def describe(self) -> str:
        if self.kind == "approved":
            return f"approved candidate {self.approved_candidate} is current"
        verb = "edit from" if self.kind == "edit" else "regenerate; not an edit of"
        return f"{verb} approved candidate {self.approved_candidate}: {'; '.join(self.reasons)}"


def approval_of(store: AssetStore, req: ImageRequest, lock: LockFile | None) -> LockApproval | None:
    """The asset's approval (its ``file`` project-relative).

    The batch lock file answers for most assets (without parsing the entries that hold no
    approval); an asset without a lock entry is looked up in its own asset.json (an approval
    given before the lock file was first written). An unreadable asset.json counts as no approval
    here: the commands that read it say what is wrong."""
    if lock is not None and req.asset_id in lock:
        if not lock.has_approval(req.asset_id):
            return None
        entry = lock.entry(req.asset_id)
        if entry is not None:
            return entry.approval
    try:
        record = store.read_asset(req.asset_dir)
    except BrokenRecord:
        return None
    if record is None or record.approval is None:
        return None
    return LockApproval.of(record.approval, req.asset_dir, req.request_hash)


def decide(base: ImageRequest, approval: LockApproval) -> tuple[ImageRequest, EditDecision]:
    """The request to build for `base` given the asset's `approval`, and why."""
    label = approval.label
    if approval.request_hash == base.request_hash:
        return base, EditDecision("approved", (), label)
    old = approval.request or {}
    if not old:
        return base, EditDecision("regenerate", ("the approval does not record its request",), label)
    blocking, changed = _differences(old, base)
    if blocking:
        return base, EditDecision("regenerate", tuple(blocking), label)
    if not changed:
        if old.get("edit") and old.get("prompt"):
            again = _as_recorded_edit(base, old)
            if again.request_hash == approval.request_hash:
                return again, EditDecision("approved", (), label)
        return base, EditDecision("regenerate", ("the prompt changed (template or include edited)",), label)
    edit = _edit_request(base, approval, changed, label)
    reasons = tuple(f"{name}: {before!r} → {after!r}" for name, (before, after) in changed.items())
    return edit, EditDecision("edit", reasons, label)


def _differences(old: Mapping[str, Any], base: ImageRequest) -> tuple[list[str], dict[str, tuple[Any, Any]]]:
    """(changes that forbid an edit, changed attributes name → (old, new))."""
    blocking: list[str] = []
    attrs_old = {**old.get("attributes", {}).get("fixed", {}), **old.get("attributes", {}).get("vary", {})}
    attrs_new = {**base.fixed, **base.vary}
    changed = {
        name: (attrs_old.get(name), attrs_new.get(name))
        for name in sorted(set(attrs_old) | set(attrs_new))
        if attrs_old.get(name) != attrs_new.get(name)
    }
    for name in changed:
        if name not in base.editable:
            blocking.append(f"{name} changed and is not editable")
    traits_old = (old.get("persona") or {}).get("traits", {})
    for name in sorted(set(traits_old) | set(base.persona_traits)):
        if traits_old.get(name) != base.persona_traits.get(name):
            blocking.append(f"persona.traits.{name} changed (the persona is never edited)")
    if old.get("persona", {}).get("id") != base.persona:
        blocking.append("the persona changed")
    old_model = old.get("model")
    if old_model is None or get_model(old_model).family != get_model(base.model).family:
        blocking.append(f"model {old_model} → {base.model}")
    record = base.record()
    for name in _SAME_FOR_EDIT:
        if old.get(name) != record[name]:
            blocking.append(f"{name} changed")
    if old.get("template_sha256") and base.template_sha256 and old["template_sha256"] != base.template_sha256:
        blocking.append("the prompt template changed")
    if old.get("negative_prompt") != base.negative_prompt and not changed:
        blocking.append("the negative prompt changed")
    old_refs = [r["sha256"] for r in old.get("references", []) if r.get("role") == "reference"]
    if old_refs != [r.sha256 for r in base.references]:
        blocking.append("the shot's reference images changed")
    return blocking, changed


def _edit_request(
    base: ImageRequest, approval: LockApproval, changed: Mapping[str, tuple[Any, Any]], label: str
) -> ImageRequest:
    """`base` as an edit of the approved image."""
    model = get_model(base.model)
    key = endpoint_key(model.family, mode_for(edit=True, sequential=model.sequential))
    approved = Reference(approval.file, approval.sha256, "approved")
    wanted = "; ".join(f"{name} now {new}" if new is not None else f"no {name}" for name, (_, new) in changed.items())
    prompt = (
        "Edit the first reference image: keep the same person, face, hair, pose, framing and photographic "
        f"style; change only this: {wanted}. The full picture: {base.prompt}"
    )
    edit = {
        "from_candidate": label,
        "approved_request_hash": approval.request_hash,
        "approved_sha256": approval.sha256,
        "changed": {name: [old, new] for name, (old, new) in changed.items()},
    }
    return _rehashed(
        base,
        model=key,
        mode=get_model(key).mode,
        references=(approved, *base.references),
        prompt=prompt,
        edit=edit,
    )


def _as_recorded_edit(base: ImageRequest, old: Mapping[str, Any]) -> ImageRequest:
    """`base` with the edit settings of the approved request (which was an edit of this base)."""
    refs = tuple(Reference(r["path"], r["sha256"], r["role"]) for r in old.get("references", []))
    return _rehashed(
        base, model=old["model"], mode=old["mode"], references=refs, prompt=old["prompt"], edit=old["edit"]
    )


def _rehashed(base: ImageRequest, **changes: Any) -> ImageRequest:
    req = dataclasses.replace(base, **changes)
    fields = {f.name: getattr(req, f.name) for f in dataclasses.fields(req)}
    return dataclasses.replace(req, prompt_hash=sha256_text(req.prompt), request_hash=request_hash(fields))


def apply_edit_rule(
    root: Path, requests: Mapping[str, tuple[ImageRequest, ...]], locks: Mapping[str, LockFile | None]
) -> tuple[dict[str, tuple[ImageRequest, ...]], dict[str, EditDecision]]:
    """Every batch's requests with the edit rule applied, and the decision for each approved asset.

    `locks` maps batch id → that batch's lock file (None: it has none yet)."""
    store = AssetStore(root)
    out: dict[str, tuple[ImageRequest, ...]] = {}
    decisions: dict[str, EditDecision] = {}
    for batch_id, reqs in requests.items():
        lock = locks.get(batch_id)
        changed = False
        new = []
        for req in reqs:
            approval = approval_of(store, req, lock)
            if approval is None:
                new.append(req)
                continue
            built, decision = decide(req, approval)
            decisions[req.asset_id] = decision
            changed = changed or built is not req
            new.append(built)
        out[batch_id] = tuple(new) if changed else reqs
    return out, decisions
