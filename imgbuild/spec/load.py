"""Load and validate a project's config, persona locks and batch manifests.

Every problem in every file is collected before anything is reported, so a person fixes their
project in one pass. Nothing here writes a file.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from imgbuild.errors import Problem
from imgbuild.models import DEFAULT_MODEL, get_model, model_keys
from imgbuild.project import CONFIG_FILE
from imgbuild.spec.evidence import ungrounded
from imgbuild.spec.expand import slug
from imgbuild.spec.files import (
    MAX_EVIDENCE_BYTES,
    MAX_REFERENCE_BYTES,
    UnsafeInput,
    check_reference,
    read_input,
)
from imgbuild.spec.model import (
    Batch,
    Persona,
    Project,
    ProjectConfig,
    Shot,
    SourceRef,
    VariantTest,
)
from imgbuild.spec.schema import validate, validate_paths, warn_unknown, without_invalid
from imgbuild.yamlio import Document, load_yaml
from imgbuild.yamlio import Path as DocPath

log = logging.getLogger("imgbuild")

__all__ = [
    "RESERVED_BATCH_IDS",
    "load_project",
    "read_config",
]

# doit's own commands: a batch with one of these names could not be selected with `doit <batch>`.
RESERVED_BATCH_IDS = frozenset(
    [
        "auto",
        "clean",
        "completion",
        "dumpdb",
        "forget",
        "help",
        "ignore",
        "info",
        "list",
        "reset-dep",
        "resetdep",
        "run",
        "strace",
        "tabcompletion",
    ]
)

# Folders that are never an output: version control and imgbuild's own state.
_INTERNAL_FOLDERS = frozenset({".git", ".hg", ".svn", ".imgbuild"})

_DEFAULTS: dict[str, Any] = {
    "provider": "preview",
    "assets_dir": "assets",
    "batches_dir": "batches",
    "personas_dir": "personas",
    "templates_dir": "templates",
    "concurrency": 4,
    "budget": None,
    "max_assets_per_batch": 1000,
    "providers": {},
}


def display(root: Path, path: Path) -> str:
    """How to name a project file in a message: relative to the working folder when inside it."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return str(path)


def read_config(root: Path, problems: list[Problem], read: dict[str, str] | None = None) -> ProjectConfig:
    """imgbuild.yaml (optional) with defaults filled in; problems are appended, defaults kept.
    `read`, when given, gets the sha256 of the file as parsed (see Project.read)."""
    root = root.resolve()
    path = root / CONFIG_FILE
    values = dict(_DEFAULTS)
    file = None
    if path.is_file():
        file = display(root, path)
        doc = _parse(root, path, problems, read)
        if doc is not None:
            if doc.data is None:
                doc.data = {}
            found = validate(doc, "project")
            problems.extend(found)
            if not found:
                values.update({k: v for k, v in doc.data.items() if k in _DEFAULTS})
                for key in ("assets_dir", "batches_dir", "personas_dir", "templates_dir"):
                    # Lexically, once: "x/../templates" is templates/ for the loader, the templates'
                    # reader and a clone alike, whether x is a folder, a link or not there at all.
                    values[key] = os.path.normpath(values[key])
                    if _inside(root, values[key]) is None:
                        problems.append(doc.problem((key,), _escape_message(values[key], root, root)))
                        values[key] = _DEFAULTS[key]
    return ProjectConfig(root=root, file=file, **values)


def load_project(root: Path, problems: list[Problem]) -> Project:
    """Load every persona and batch under `root`. Invalid files are left out and their problems
    appended to `problems`; the caller decides (after expansion adds its own) whether to stop."""
    read: dict[str, str] = {}
    config = read_config(root, problems, read)
    loader = _Loader(config, problems, read)
    personas = loader.personas()
    batches = loader.batches(personas)
    return Project(config=config, personas=MappingProxyType(personas), batches=tuple(batches), read=read)


def _parse(root: Path, path: Path, problems: list[Problem], read: dict[str, str] | None = None) -> Document | None:
    shown = display(root, path)
    try:
        data = read_input(root, path, shown=shown).data
    except UnsafeInput as exc:
        problems.append(Problem(shown, None, "", str(exc)))
        return None
    except OSError as exc:
        problems.append(Problem(shown, None, "", f"cannot read the file: {exc.strerror or exc}"))
        return None
    if read is not None:  # the bytes parsed, not the file as it may be by the time it is hashed
        read[os.path.normpath(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(shown, line, "", f"not UTF-8 text ({exc.reason}) — save the file as UTF-8"))
        return None
    doc, found = load_yaml(text, shown)
    problems.extend(found)
    if doc is not None and doc.data is not None and not isinstance(doc.data, dict):
        problems.append(Problem(shown, 1, "", f"expected a mapping of keys to values, found {type(doc.data).__name__}"))
        return None
    return None if found else doc


def _inside(root: Path, relative: str) -> Path | None:
    """`root / relative` when it stays inside the project folder (after symlinks), else None."""
    if os.path.isabs(relative) or relative.startswith("~"):
        return None
    target = (root / relative).resolve()
    return target if target.is_relative_to(root) else None


def _escape_message(value: str, base: Path | None = None, root: Path | None = None) -> str:
    """Why `value` is refused: outside the project (or `base`), directly or through a link."""
    where = "the project folder" if base is None or base == root else f"{base.name}/"
    if base is not None and not os.path.isabs(value):
        unresolved = Path(os.path.normpath(base / value))
        if unresolved.is_relative_to(base) and unresolved != unresolved.resolve():
            return f"{value!r} is a link to {unresolved.resolve()}, outside {where} — copy the file in instead"
    return f"{value!r} is outside {where} — use a path inside it"


def _yaml_files(folder: Path, *, skip: str | None = None) -> Iterator[Path]:
    if folder.is_dir():
        for path in sorted(folder.glob("*.yml")):
            log.warning(
                "%s: ignored — imgbuild reads *.yaml files; rename it to %s", path, path.with_suffix(".yaml").name
            )
        for path in sorted(folder.glob("*.yaml")):
            if path.name != skip and not path.is_dir():  # a FIFO or a link out is refused when read
                yield path


class _Loader:
    """Holds the state shared while loading one project (config, problem list, hash cache)."""

    def __init__(self, config: ProjectConfig, problems: list[Problem], read: dict[str, str]) -> None:
        self.config = config
        self.root = config.root
        self.problems = problems
        self.read = read  # project-relative path -> sha256 of each YAML file as parsed
        self.invalid_personas: set[str] = set()  # persona files that exist but have problems
        self._hashes: dict[Path, str] = {}

    # -- personas -------------------------------------------------------------------------
    def personas(self) -> dict[str, Persona]:
        out: dict[str, Persona] = {}
        folder = self.root / self.config.personas_dir
        for path in _yaml_files(folder):
            persona = self._persona(path)
            if persona is not None:
                out[persona.id] = persona
            else:
                self.invalid_personas.add(path.stem)
        return out

    def _persona(self, path: Path) -> Persona | None:
        doc = _parse(self.root, path, self.problems, self.read)
        if doc is None:
            return None
        if doc.data is None:
            self.problems.append(Problem(doc.file, 1, "", "empty persona file"))
            return None
        found = validate(doc, "persona")
        self.problems.extend(found)
        if found:
            return None
        data = doc.data
        if data["id"] != path.stem:
            self.problems.append(doc.problem(("id",), f"{data['id']!r} must equal the file name {path.stem!r}"))
            return None
        evidence = self._sources(doc, ("evidence",), data["evidence"])
        if evidence is None:
            return None
        return Persona(
            id=data["id"],
            file=doc.file,
            name=data.get("name", data["id"]),
            traits=MappingProxyType(dict(data["traits"])),
            evidence=evidence,
            allowed=MappingProxyType({k: tuple(v) for k, v in data["allowed"].items()}),
            lines=doc.lines,
        )

    def _sources(self, doc: Document, at: DocPath, items: list[dict[str, str] | None]) -> tuple[SourceRef, ...] | None:
        refs = []
        ok = True
        for i, item in enumerate(items):
            if item is None:  # invalid, already reported
                ok = False
                continue
            digest = self._file_hash(doc, (*at, i, "path"), item["path"])
            if digest is None:
                ok = False
                continue
            unfounded = ungrounded(self._evidence_text(item["path"]), item["path"], item.get("anchor"))
            if unfounded is not None:
                self.problems.append(doc.problem((*at, i, unfounded[0]), unfounded[1]))
                ok = False
                continue
            refs.append(SourceRef(item["path"], item.get("anchor"), item.get("note"), digest))
        return tuple(refs) if ok else None

    def _evidence_text(self, relative: str) -> bytes:
        """The bytes of an evidence file whose hash was just taken (so it is a confined, regular
        file under its cap), for the checks that it grounds something."""
        return read_input(self.root, Path(relative), max_bytes=MAX_EVIDENCE_BYTES, shown=relative).data

    def _file_hash(self, doc: Document, at: DocPath, relative: str, kind: str = "evidence file") -> str | None:
        target = _inside(self.root, relative)
        if target is None:
            self.problems.append(doc.problem(at, _escape_message(relative, self.root, self.root)))
            return None
        if target not in self._hashes:
            reference = kind == "reference image"
            try:
                found = read_input(
                    self.root,
                    target,
                    max_bytes=MAX_REFERENCE_BYTES if reference else MAX_EVIDENCE_BYTES,
                    keep=reference,
                    shown=relative,
                )
                if reference:  # decoded now: a non-image or a bomb is bad input, not a failed paid call
                    check_reference(found.data, relative)
            except FileNotFoundError:
                self.problems.append(doc.problem(at, f"{kind} {relative!r} does not exist"))
                return None
            except IsADirectoryError:
                article = "an" if kind[0] in "aeiou" else "a"
                self.problems.append(doc.problem(at, f"{relative!r} is a folder, expected {article} {kind}"))
                return None
            except UnsafeInput as exc:
                self.problems.append(doc.problem(at, str(exc)))
                return None
            except OSError as exc:
                self.problems.append(doc.problem(at, f"cannot read {kind} {relative!r}: {exc.strerror or exc}"))
                return None
            self._hashes[target] = found.sha256
        return self._hashes[target]

    # -- batches --------------------------------------------------------------------------
    def batches(self, personas: Mapping[str, Persona]) -> list[Batch]:
        out = []
        folder = self.root / self.config.batches_dir
        for path in _yaml_files(folder, skip=CONFIG_FILE):
            batch = self._batch(path, personas)
            if batch is not None:
                out.append(batch)
        return out

    def _batch(self, path: Path, personas: Mapping[str, Persona]) -> Batch | None:
        doc = _parse(self.root, path, self.problems, self.read)
        if doc is None:
            return None
        problems_before = len(self.problems)
        batch_id = path.stem
        if not _is_id(batch_id) or "_" in batch_id:
            self.problems.append(
                Problem(doc.file, None, "", f"batch file name {batch_id!r} must be lowercase letters, digits and '-'")
            )
        elif batch_id in RESERVED_BATCH_IDS:
            self.problems.append(
                Problem(doc.file, None, "", f"batch name {batch_id!r} is a doit command — rename the file")
            )
        if doc.data is None:
            self.problems.append(Problem(doc.file, 1, "", "empty batch manifest: under-specified, nothing to build"))
            return None
        found, bad_paths = validate_paths(doc, "batch")
        self.problems.extend(found)
        # Check what is valid even when something else is not: every problem shows in one run.
        data = without_invalid(doc.data, bad_paths) if found else doc.data
        persona = self._persona_ref(doc, data.get("persona"), personas)
        source_basis = self._sources(doc, ("source_basis",), data.get("source_basis", []))
        output = data.get("output")
        if output is not None and _inside(self.root, output) is None:
            self.problems.append(doc.problem(("output",), _escape_message(output, self.root, self.root)))
        elif output is not None and (internal := self._internal(output)) is not None:
            self.problems.append(
                doc.problem(("output",), f"{output!r} is {internal} — put the images in a folder of their own")
            )
        models = self._models(doc, data)
        output_format = data.get("output_format", "png")  # checked against the provider in resolve()
        shots = tuple(
            self._shot(doc, i, raw)
            for i, raw in enumerate(data.get("shots", []))
            if raw is not None and "id" in raw and "need" in raw  # else invalid, and reported
        )
        self._unique(doc, "shots", [(s.index, s.id) for s in shots])
        variant_tests = tuple(
            self._variant(doc, i, raw, shots)
            for i, raw in enumerate(data.get("variant_tests", []))
            if raw is not None and "id" in raw and "reason" in raw
        )
        self._unique(doc, "variant_tests", [(v.index, v.id) for v in variant_tests])
        fixed = MappingProxyType(dict(data.get("fixed", {})))
        # `vary: {model: [...]}` is a list of models, not an attribute: the fact rule is not for it
        vary = _vary({k: v for k, v in data.get("vary", {}).items() if k != "model"})
        self._check_attributes(doc, fixed, vary, shots, variant_tests, persona)
        if len(self.problems) != problems_before or persona is None or source_basis is None:
            return None
        return Batch(
            id=batch_id,
            file=doc.file,
            path=path.resolve(),
            purpose=data["purpose"],
            persona=data["persona"],
            source_basis=source_basis,
            output=data["output"],
            model=models[0],
            models=models if len(models) > 1 else (),
            quality=data.get("quality", "max"),
            quality_reason=data.get("quality_reason"),
            aspect_ratio=data.get("aspect_ratio", "9:16"),
            output_format=output_format,
            max_assets=data.get("max_assets"),
            fixed=fixed,
            vary=vary,
            shots=shots,
            variant_tests=variant_tests,
            lines=doc.lines,
        )

    def _models(self, doc: Document, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The batch's endpoint keys: `model` (one, or a list) or `vary.model`; one per family."""
        given = data.get("model", DEFAULT_MODEL)
        keys: list[str] = list(given) if isinstance(given, list) else [given]
        at: DocPath = ("model",)
        varied = data.get("vary", {}).get("model")
        if varied is not None:
            if "model" in data:
                self.problems.append(doc.problem(("vary", "model"), "the models are given twice: keep `model` or this"))
            keys, at = list(varied), ("vary", "model")
            for i, key in enumerate(keys):
                if key not in model_keys():
                    hint = difflib.get_close_matches(key, model_keys(), n=1)
                    self.problems.append(
                        doc.problem(
                            (*at, i), f"{key!r} is not a model" + (f" — did you mean {hint[0]!r}?" if hint else "")
                        )
                    )
            keys = [k for k in keys if k in model_keys()]
        families: dict[str, str] = {}
        for i, key in enumerate(keys):
            family = get_model(key).family
            if family in families:
                self.problems.append(
                    doc.problem(
                        (*at, i),
                        f"{key!r} and {families[family]!r} are both {get_model(key).label}: list a family once",
                    )
                )
            families.setdefault(family, key)
        return tuple(keys) or (DEFAULT_MODEL,)

    def _internal(self, output: str) -> str | None:
        """What `output` is when it is a folder imgbuild or git owns (assets there would mix with
        records, manifests or the repository's own files); None for a folder of its own."""
        target = _inside(self.root, output)
        assert target is not None
        if target == self.root:
            return "the project folder itself"
        first = target.relative_to(self.root).parts[0]
        if first in _INTERNAL_FOLDERS:
            return f"inside {first}/, an internal folder"
        config = self.config
        for key in ("batches_dir", "personas_dir", "templates_dir"):
            folder = (self.root / getattr(config, key)).resolve()
            if folder != self.root and target.is_relative_to(folder):
                return f"inside {getattr(config, key)}/, the project's {key.removesuffix('_dir')} folder"
        return None

    def _persona_ref(self, doc: Document, name: str | None, personas: Mapping[str, Persona]) -> Persona | None:
        if name is None or name in self.invalid_personas:
            return None  # missing (the schema said so) or broken (its own file's problems say so)
        persona = personas.get(name)
        if persona is None:
            known = ", ".join(sorted(personas)) or "none"
            self.problems.append(
                doc.problem(("persona",), f"no persona lock {name!r} in {self.config.personas_dir}/ (known: {known})")
            )
        return persona

    def _shot(self, doc: Document, index: int, raw: dict[str, Any]) -> Shot:
        at: DocPath = ("shots", index)
        template, prompt = raw.get("template"), raw.get("prompt")
        written = doc.data["shots"][index]  # as written: a value the schema refused still counts as given
        if ("template" in written) == ("prompt" in written):
            which = "both" if "template" in written else "neither"
            self.problems.append(
                doc.problem(at, f"shot {raw['id']!r} has {which} of 'template' and 'prompt' — give exactly one")
            )
        if template is not None:
            folder = self.config.templates_dir
            base = (self.root / folder).resolve()
            target = _inside(base, template)
            if target is None:
                self.problems.append(doc.problem((*at, "template"), _escape_message(template, base, self.root)))
            elif not target.is_file():
                self.problems.append(doc.problem((*at, "template"), f"template {template!r} not found in {folder}/"))
        references = []
        for i, item in enumerate(raw.get("references", ())):
            if item is None:
                continue  # invalid, already reported
            digest = self._file_hash(doc, (*at, "references", i, "path"), item["path"], "reference image")
            if digest is not None:
                references.append(SourceRef(item["path"], None, item.get("note"), digest))
        return Shot(
            id=raw["id"],
            index=index,
            need=raw["need"],
            template=template,
            prompt=prompt,
            negative=raw.get("negative"),
            candidates=raw.get("candidates", 1),
            editable=tuple(x for x in raw.get("editable", ()) if x is not None),
            fixed=MappingProxyType(dict(raw.get("fixed", {}))),
            vary=_vary(raw.get("vary", {})),
            max_images=raw.get("max_images", 1),
            references=tuple(references),
        )

    def _variant(self, doc: Document, index: int, raw: dict[str, Any], shots: tuple[Shot, ...]) -> VariantTest:
        known = {s.id for s in shots}
        for j, shot_id in enumerate(raw.get("shots", [])):
            if shot_id is not None and shot_id not in known:
                self.problems.append(
                    doc.problem(("variant_tests", index, "shots", j), f"no shot {shot_id!r} in this batch")
                )
        if not raw.get("fixed") and not raw.get("vary"):
            self.problems.append(
                doc.problem(("variant_tests", index), f"variant test {raw['id']!r} sets no attribute (fixed or vary)")
            )
        shots_field = raw.get("shots")
        return VariantTest(
            id=raw["id"],
            index=index,
            reason=raw["reason"],
            shots=tuple(x for x in shots_field if x is not None) if shots_field is not None else None,
            fixed=MappingProxyType(dict(raw.get("fixed", {}))),
            vary=_vary(raw.get("vary", {})),
        )

    def _unique(self, doc: Document, key: str, ids: list[tuple[int, str]]) -> None:
        seen: set[str] = set()
        for index, item_id in ids:
            if item_id in seen:
                self.problems.append(doc.problem((key, index, "id"), f"duplicate id {item_id!r}"))
            seen.add(item_id)

    def _check_attributes(
        self,
        doc: Document,
        fixed: Mapping[str, str],
        vary: Mapping[str, tuple[str, ...]],
        shots: tuple[Shot, ...],
        variant_tests: tuple[VariantTest, ...],
        persona: Persona | None,
    ) -> None:
        """The fact rule (outside variant_tests every value must be evidence-backed), values that
        would give the same asset id, and editable names that are no attribute."""
        places: list[tuple[DocPath, Mapping[str, str], Mapping[str, tuple[str, ...]]]] = [((), fixed, vary)]
        places += [(("shots", s.index), s.fixed, s.vary) for s in shots]
        places += [(("variant_tests", v.index), v.fixed, v.vary) for v in variant_tests]
        for at, level_fixed, level_vary in places:
            for key in sorted(set(level_fixed) & set(level_vary)):
                self.problems.append(
                    doc.problem((*at, "vary", key), f"attribute {key!r} is both fixed and varying here — choose one")
                )
            for key, values in level_vary.items():
                self._distinct_slugs(doc, (*at, "vary", key), values)
            if persona is None or at[:1] == ("variant_tests",):
                continue
            for key, value in level_fixed.items():
                self._backed(doc, (*at, "fixed", key), persona, key, value)
            for key, values in level_vary.items():
                for i, value in enumerate(values):
                    if value is not None:
                        self._backed(doc, (*at, "vary", key, i), persona, key, value)
        known = sorted({*fixed, *vary, *(persona.allowed if persona else ())})
        for shot in shots:
            names = sorted({*known, *shot.fixed, *shot.vary})
            for i, name in enumerate(shot.editable):
                if name not in names:
                    warn_unknown(
                        doc, ("shots", shot.index, "editable", i), name, names, what="not an attribute of this shot"
                    )

    def _distinct_slugs(self, doc: Document, at: DocPath, values: tuple[str, ...]) -> None:
        seen: dict[str, tuple[int, str]] = {}
        for i, value in enumerate(values):
            if value is None:
                continue
            key = slug(value)
            if key in seen:
                first_index, first = seen[key]
                same = "is listed twice" if first == value else f"gives the same asset id part {key!r} as {first!r}"
                self.problems.append(
                    doc.problem((*at, i), f"{value!r} {same} (item {first_index}) — make them distinct")
                )
            else:
                seen[key] = (i, value)

    def _backed(self, doc: Document, at: DocPath, persona: Persona, key: str, value: str) -> None:
        allowed = persona.allowed.get(key)
        if allowed is None:
            self.problems.append(
                doc.problem(
                    at,
                    f"persona {persona.id}'s evidence backs no values for {key!r} — add them to "
                    f"{persona.file} under allowed, or move this under variant_tests",
                )
            )
        elif value not in allowed:
            self.problems.append(
                doc.problem(
                    at,
                    f"{value!r} is not backed by persona {persona.id}'s evidence — move it under variant_tests"
                    f" (backed: {', '.join(repr(v) for v in allowed)})",
                )
            )


def _vary(raw: Mapping[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in raw.items()})


def _is_id(text: str) -> bool:
    return (
        bool(text)
        and text[0].isascii()
        and text[0].isalnum()
        and text == text.lower()
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
    )
