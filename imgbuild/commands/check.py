"""`imgbuild check`: for CI. Does every asset match its manifest? No network, no local database.

With ``--approved`` it also gates the render stage: every asset needs an approved image given
for its current request. With ``--strict`` evidence that changed since the images were made
fails too.

The check collects findings once and shows them three ways: text (one line each, for people),
``--json`` (schemas/output/check.schema.json, for scripts) and ``--format github`` (the text, at
most ten ``::error`` annotations on the manifest lines, and the full table in
``$GITHUB_STEP_SUMMARY``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgbuild import noop
from imgbuild.commands.output import print_json
from imgbuild.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, UsageError
from imgbuild.locate import Location, locate_evidence, locate_orphan, locate_request, locate_state
from imgbuild.orphans import Orphan, find_orphans, orphans_in
from imgbuild.resolve import resolve
from imgbuild.shard import chosen_shard, select_orphans, select_shard, shard_line

if TYPE_CHECKING:
    from imgbuild.resolve import Resolution

__all__ = ["FORMATS", "Finding", "check"]

FORMATS = ("text", "json", "github")
MAX_ANNOTATIONS = 10  # GitHub shows ten error annotations per step; the summary has them all


@dataclass(frozen=True)
class Finding:
    """One thing `check` reports: what kind, about which asset, why, and where in the input."""

    kind: str  # changed, new, incomplete, missing-image, interrupted, broken, outdated, evidence,
    #            orphaned, unapproved, stale approval
    asset_id: str | None  # None for an orphan
    asset_dir: str
    message: str  # the reason, without the kind and folder
    location: Location
    fails: bool  # whether it makes the check exit non-zero

    @property
    def text(self) -> str:
        """The line `check` prints (a broken record's message names its own file)."""
        if self.kind == "broken":
            return f"broken: {self.message}"
        return f"{self.kind}: {self.asset_dir}: {self.message}"


def check(
    root: Path, *, approved: bool = False, strict: bool = False, output: str = "text", shard: str | None = None
) -> int:
    """Report every asset (of one shard) that needs attention; 0 when none, 1 when some, 2 when
    a record cannot be read."""
    if output not in FORMATS:
        raise UsageError(f"unknown --format {output!r} (formats: {', '.join(FORMATS)})")
    chosen = chosen_shard(shard)
    # Without a shard or --approved (the index covers neither the reviews nor a selection), the
    # batches the no-op index (or on a fresh clone, the sealed lock files) vouches for are
    # counted, not resolved.
    resolution: Resolution | None = None
    if chosen is None and not approved:
        source = noop.check_source(root)
        if isinstance(source, noop.Vouched):  # nothing loaded: only orphans can be found
            findings = _orphaned(orphans_in(root.resolve(), source.folders, source.asset_dirs))
            total = source.assets
        else:
            resolution = source.resolution
            orphans = find_orphans(resolution, source.asset_dirs)
            findings, total = _findings(source, orphans, approved=approved, strict=strict)
    else:
        whole = resolve(root)
        resolution = select_shard(whole, chosen)
        orphans = select_orphans(find_orphans(whole), chosen)
        findings, total = _findings(noop.Source(resolution), orphans, approved=approved, strict=strict)
    broken = any(f.kind == "broken" for f in findings)
    code = EXIT_INVALID if broken else EXIT_FAILED if any(f.fails for f in findings) else EXIT_OK
    summary = _summary(findings, total, approved=approved, strict=strict, code=code)
    if output == "json":
        print_json(
            {
                "version": 1,
                "command": "check",
                "exit_code": code,
                "assets": total,
                "approved": approved,
                "strict": strict,
                "findings": [_finding_json(f) for f in findings],
                "summary": summary,
            }
        )
        return code
    if chosen is not None and resolution is not None:
        print(shard_line(chosen, whole, resolution))
    for finding in findings:
        print(finding.text)
    for line in summary:
        print(line)
    if output == "github":
        _github(root, findings, summary)
    return code


def _findings(source: noop.Source, orphans: list[Orphan], *, approved: bool, strict: bool) -> tuple[list[Finding], int]:
    resolution = source.resolution
    states: list[Finding] = []
    reviews: list[Finding] = []
    if resolution.requests or approved:  # else the no-op index vouched for every batch
        states, reviews = _assessed(source, approved=approved, strict=strict)
    return [*states, *_orphaned(orphans), *reviews], sum(map(len, resolution.requests.values())) + source.vouched


def _orphaned(orphans: list[Orphan]) -> list[Finding]:
    return [Finding("orphaned", None, o.asset_dir, o.reason(), locate_orphan(o), True) for o in orphans]


def _assessed(source: noop.Source, *, approved: bool, strict: bool) -> tuple[list[Finding], list[Finding]]:
    """What the full assessment finds in the batches the index did not vouch for: of their build
    state, and (with `approved`) of their review state."""
    from imgbuild.state import StateIndex, approval_problem, assess, assess_reviews

    resolution = source.resolution
    index = StateIndex(resolution, verify=True)
    states = assess(resolution, index)
    if source.indexed:  # not a shard's or --approved's selection
        noop.enter_checked(resolution, index, states, source.started_ns)
    findings: list[Finding] = []
    for state in states:
        req = state.request
        here = locate_request(resolution, req)
        if state.status == "broken":
            findings.append(Finding("broken", req.asset_id, req.asset_dir, "; ".join(state.reasons), here, True))
        elif state.stale:
            reason = "; ".join(state.reasons)
            where = locate_state(resolution, state)
            findings.append(Finding(state.status, req.asset_id, req.asset_dir, reason, where, True))
        elif state.outdated:
            reason = (
                f"{'; '.join(state.outdated)} (the request is the same: no call is needed;"
                " the next build updates the records)"
            )
            findings.append(Finding("outdated", req.asset_id, req.asset_dir, reason, here, True))
        if state.evidence:
            reason = "; ".join(c.describe() for c in state.evidence)
            where = locate_evidence(state.evidence[0])
            findings.append(Finding("evidence", req.asset_id, req.asset_dir, reason, where, strict))
    reviews: list[Finding] = []
    if approved:
        for review in assess_reviews(resolution, index):
            problem = approval_problem(resolution.root, review)
            if problem is not None:
                req = review.request
                kind, reason = problem
                reviews.append(
                    Finding(kind, req.asset_id, req.asset_dir, reason, locate_request(resolution, req), True)
                )
    return findings, reviews


def _summary(findings: list[Finding], total: int, *, approved: bool, strict: bool, code: int) -> list[str]:
    def count(*kinds: str) -> int:
        return sum(1 for f in findings if f.kind in kinds)

    attention = count("broken", "new", "changed", "incomplete", "missing-image", "interrupted", "outdated")
    orphans, drifted = count("orphaned"), count("evidence")
    unapproved = count("unapproved", "stale approval")
    lines = []
    if attention:
        lines.append(f"imgbuild check: {attention} of {total} assets need attention (run `imgbuild plan`, then `doit`)")
    if orphans:
        lines.append(f"imgbuild check: {orphans} orphaned asset folders (`imgbuild prune` lists what it would remove)")
    if drifted:
        fails = " (fails under --strict)" if not strict else ""
        lines.append(
            f"imgbuild check: {drifted} of {total} assets were made from evidence that has changed since{fails}"
        )
    if unapproved:
        lines.append(
            f"imgbuild check: {unapproved} of {total} assets have no current approved image"
            " (run `imgbuild approve <asset> <candidate>`)"
        )
    if code == EXIT_OK:
        also = " and have a current approved image" if approved else ""
        lines.append(f"imgbuild check: all {total} assets match their manifests{also}")
    return lines


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "asset": finding.asset_id,
        "asset_dir": finding.asset_dir,
        "message": finding.message,
        "file": finding.location.file,
        "line": finding.location.line,
        "fails": finding.fails,
    }


# -- GitHub Actions -----------------------------------------------------------------------------------


def _github(root: Path, findings: list[Finding], summary: list[str]) -> None:
    """Annotations on the lines that made assets stale, and the whole table in the step summary."""
    prefix = _workspace_prefix(root)
    failing = [f for f in findings if f.fails]
    for finding in failing[:MAX_ANNOTATIONS]:
        where = f"file={_escape_property(prefix + finding.location.file)}"
        if finding.location.line is not None:
            where += f",line={finding.location.line}"
        title = _escape_property(f"imgbuild check: {finding.kind}")
        print(f"::error {where},title={title}::{_escape_data(_subject(finding) + ': ' + finding.message)}")
    if len(failing) > MAX_ANNOTATIONS:
        print(f"::notice::{_escape_data(f'{len(failing) - MAX_ANNOTATIONS} more findings are in the job summary')}")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as out:
            out.write(_markdown(prefix, findings, summary))


def _subject(finding: Finding) -> str:
    return finding.asset_id or finding.asset_dir


def _markdown(prefix: str, findings: list[Finding], summary: list[str]) -> str:
    lines = ["## imgbuild check", ""]
    lines += [f"- {_cell(line)}" for line in summary]
    if findings:
        lines += ["", "| | kind | asset | where | why |", "|---|---|---|---|---|"]
        for f in findings:
            where = prefix + f.location.file + (f":{f.location.line}" if f.location.line is not None else "")
            mark = "❌" if f.fails else "⚠️"
            lines.append(f"| {mark} | {f.kind} | {_cell(_subject(f))} | `{_cell(where)}` | {_cell(f.message)} |")
    return "\n".join(lines) + "\n\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _workspace_prefix(root: Path) -> str:
    """The project folder relative to the repository checkout (annotations name files from
    there): ``$GITHUB_WORKSPACE``, else the working folder."""
    base = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()
    try:
        relative = root.resolve().relative_to(base).as_posix()
    except ValueError:
        return f"{root.resolve().as_posix()}/"
    return "" if relative == "." else f"{relative}/"


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping (actions/toolkit, command.ts).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
