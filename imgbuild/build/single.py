"""One call from a normalized request file: the brief's tool contract (`imgbuild call`, `poll`,
`upload` in imgbuild/commands/), through the same code as a build.

A request file is the ``request`` part of a run's request.json, the whole request.json (its
``candidate`` is then the default), or a request written by hand; schemas/request.schema.json
validates it. The request is rebuilt with `request_from_record` (its hash recomputed and, when
given, checked), refused where a build would refuse it (the model's limits at the provider, a
reference image that is missing or changed, the budget), and made by `make_candidate` with a
`BuildSession`: the build lock, the provider's retries, the records and the kill-safe write
order are the build's own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from imgbuild.build.session import BuildSession
from imgbuild.errors import InvalidInput, Problem, UsageError
from imgbuild.models import get_model
from imgbuild.requests import ImageRequest, limit_problems, request_from_record
from imgbuild.spec.load import display, read_config
from imgbuild.spec.model import ProjectConfig
from imgbuild.spec.schema import validate
from imgbuild.yamlio import Document, load_yaml

__all__ = ["UPLOADS_FOLDER", "RequestFile", "load_request_file", "next_candidate", "report_made", "request_session"]

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # a request is a few kilobytes; a bigger file is not one
UPLOADS_FOLDER = "uploads"  # under the assets folder: where `imgbuild upload` records its uploads


@dataclass(frozen=True)
class RequestFile:
    """A request read from a file, ready to call."""

    file: str  # as shown in messages
    request: ImageRequest
    candidate: int | None  # the run's candidate, when the file is a run's request.json
    config: ProjectConfig


def load_request_file(root: Path, path: Path) -> RequestFile:
    """Read, validate and rebuild the request in `path`. InvalidInput (exit 2) names the file,
    the line and the field of every problem."""
    root = root.resolve()
    problems: list[Problem] = []
    config = read_config(root, problems)
    if problems:
        raise InvalidInput(problems)
    shown = display(root, path.resolve())
    try:
        if path.stat().st_size > MAX_REQUEST_BYTES:
            raise InvalidInput([Problem(shown, None, "", f"over {MAX_REQUEST_BYTES} bytes: not a request file")])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no request file {shown}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(shown, None, "", f"not UTF-8 text ({exc.reason})")]) from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidInput([Problem(shown, getattr(exc, "lineno", None), "", f"not JSON: {exc}")]) from None
    doc, problems = load_yaml(text, shown)  # JSON is YAML: this keeps the line of every value
    assert doc is not None and not problems
    candidate = None
    if isinstance(doc.data, dict) and isinstance(doc.data.get("request"), dict):  # a run's request.json
        raw_candidate = doc.data.get("candidate")
        candidate = raw_candidate if isinstance(raw_candidate, int) else None
        doc = Document(
            shown,
            doc.data["request"],
            {p[1:]: line for p, line in doc.lines.items() if p[:1] == ("request",)},
        )
        prefix = "request."
    else:
        prefix = ""
    problems = validate(doc, "request")
    if problems:
        raise InvalidInput([_prefixed(p, prefix) for p in problems])
    req, found = request_from_record(doc.data)
    problems = [_prefixed(doc.problem((field.split(".")[0],), message), prefix) for field, message in found]
    if req is not None:
        problems += [_prefixed(p, prefix) for p in _refusals(root, doc, req)]
    if problems or req is None:
        raise InvalidInput(problems)
    return RequestFile(shown, req, candidate, config)


def _prefixed(problem: Problem, prefix: str) -> Problem:
    path = f"{prefix}{problem.path}" if problem.path else prefix.rstrip(".")
    return Problem(problem.file, problem.line, path, problem.message)


def _refusals(root: Path, doc: Document, req: ImageRequest) -> list[Problem]:
    """What a build refuses before any call: references missing or changed, the model's limits."""
    problems = []
    sizes = {}
    for i, ref in enumerate(req.references):
        path = (root / ref.path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            problems.append(doc.problem(("references", i, "path"), f"no reference image {ref.path!r} in the project"))
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            problems.append(doc.problem(("references", i, "sha256"), f"{ref.path} is not the image this sha256 names"))
        sizes[ref.path] = len(data)
    if not (root / req.asset_dir).resolve().is_relative_to(root):
        problems.append(doc.problem(("asset_dir",), f"{req.asset_dir!r} is outside the project"))
    limits = get_model(req.model).limits(req.provider)
    for key, message in limit_problems(req, limits, sizes):
        problems.append(doc.problem((key,) if key else ("size",), message))
    return problems


def request_session(root: Path, config: ProjectConfig, provider: str) -> BuildSession:
    session = BuildSession(root, provider, config.providers.get(provider, {}))
    session.budget = config.budget
    return session


def next_candidate(rf: RequestFile, session: BuildSession, asked: int | None) -> int | None:
    """The candidate to make: the one asked for, the run's, else the first not made (None: all are)."""
    req = rf.request
    wanted = asked if asked is not None else rf.candidate
    if wanted is not None:
        if not 1 <= wanted <= req.candidates:
            raise UsageError(f"{rf.file}: candidate {wanted} is not one of 1..{req.candidates} of {req.asset_id}")
        return wanted
    record = session.store.read_asset(req.asset_dir)
    made = session.store.made(record, req.asset_dir, req.request_hash) if record is not None else {}
    return next((k for k in range(1, req.candidates + 1) if k not in made), None)


def report_made(command: str, session: BuildSession, req: ImageRequest, candidate: int) -> None:
    record = session.store.read_asset(req.asset_dir)
    made = session.store.made(record, req.asset_dir, req.request_hash) if record is not None else {}
    files = [f"{req.asset_dir}/{image.file}" for image in made.get(candidate, ())]
    print(f"imgbuild {command}: {req.asset_id} candidate {candidate}: {len(files)} image(s): {', '.join(files)}")
