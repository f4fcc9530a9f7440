"""A sealed lock file: a fresh clone's `imgbuild check` and its first `doit` know every request of a
batch from its committed lock file, without rendering a prompt or parsing an asset.json, and give
the same answer as looking at everything (imgbuild.noop, "sealed")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import BATCH, PERSONA, TEMPLATE, run_cli, run_doit, write_project

import imgbuild.cache
import imgbuild.resolve
from imgbuild import noop
from imgbuild.records import AssetStore

LOCK = "batches/covers.lock.json"
ASSET = "covers.hook.home-office.morning-light"


def _lock(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((root / LOCK).read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("sealed") / "origin")
    assert run_cli(root, "build") == 0
    return root


def fresh_copy(origin: Path, target: Path) -> Path:
    """What a clone has: the committed files, new inodes and mtimes, no .imgbuild/."""
    shutil.copytree(origin, target, ignore=shutil.ignore_patterns(".imgbuild"), copy_function=shutil.copy)
    return target


def no_rendering_nor_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imgbuild.resolve, "_render", lambda *a: pytest.fail("a prompt was rendered"))
    monkeypatch.setattr(AssetStore, "read_asset", lambda *a: pytest.fail("an asset.json was parsed"))


def test_a_build_seals_its_lock_file(built: Path) -> None:
    lock = _lock(built)
    spec = imgbuild.resolve.resolve(built)
    assert lock["inputs_sha256"] == spec.inputs["covers"]
    assert len(lock["seal_sha256"]) == 64
    for entry in lock["assets"].values():
        assert entry["record_sha256"] == _sha256(built / entry["asset_dir"] / "asset.json")


def test_a_fresh_clone_is_checked_from_its_lock_files(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = fresh_copy(built, tmp_path / "clone")
    no_rendering_nor_records(monkeypatch)
    capsys.readouterr()
    assert run_cli(clone, "check") == 0
    assert "all 4 assets match their manifests" in capsys.readouterr().out
    assert noop.source(clone, noop.BUILD).counts == {"covers": 8}  # and its first doit: no task


def test_a_fresh_clone_in_another_folder_and_working_folder_has_the_same_inputs(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = fresh_copy(built, tmp_path / "deeper" / "clone")
    monkeypatch.chdir(tmp_path)
    assert imgbuild.resolve.resolve(clone).inputs == imgbuild.resolve.resolve(built).inputs


def _break_record(root: Path) -> None:
    record = sorted(root.glob("assets/*/asset.json"))[0]
    text = record.read_text()
    record.write_text(f"<<<<<<< HEAD\n{text}=======\n{text}>>>>>>> other\n")


def _respace_record(root: Path) -> None:
    record = sorted(root.glob("assets/*/asset.json"))[1]
    record.write_text(record.read_text() + "\n")  # valid, other bytes: not the sealed ones


def _edit_record(root: Path) -> None:
    record = sorted(root.glob("assets/*/asset.json"))[0]
    data = json.loads(record.read_text())
    data["purpose"] = "edited by hand"
    record.write_text(json.dumps(data, indent=2))


def _lose_image(root: Path) -> None:
    next(iter(sorted(root.glob("assets/*/images/candidates/*.jpg")))).unlink()


def _edit_template(root: Path) -> None:
    (root / "templates/cover.j2").write_text(TEMPLATE.replace("Photo", "Portrait"))


def _edit_evidence(root: Path) -> None:
    (root / "evidence/mia.md").write_text("# Mia, with a new note\n")


def _edit_persona(root: Path) -> None:
    (root / "personas/mia.yaml").write_text(PERSONA.replace("oval face", "round face"))


def _edit_lock(change: Callable[[dict], None]) -> Callable[[Path], None]:  # type: ignore[type-arg]
    def edit(root: Path) -> None:
        data = _lock(root)
        change(data)
        (root / LOCK).write_text(json.dumps(data, indent=2))

    return edit


def _tamper_record_sha(data: dict) -> None:  # type: ignore[type-arg]
    next(iter(data["assets"].values()))["record_sha256"] = "0" * 64


def _tamper_inputs(data: dict) -> None:  # type: ignore[type-arg]
    data["inputs_sha256"] = "0" * 64


def _drop_entry(data: dict) -> None:  # type: ignore[type-arg]
    del data["assets"][sorted(data["assets"])[0]]


def _drop_image_of_entry(data: dict) -> None:  # type: ignore[type-arg]
    next(iter(data["assets"].values()))["images"].pop()


def _reindent_lock(root: Path) -> None:
    (root / LOCK).write_text(json.dumps(_lock(root), indent=4))  # the same entries, other bytes


def _drop_lock(root: Path) -> None:
    (root / LOCK).unlink()


def _add_orphan(root: Path) -> None:
    first = sorted(root.glob("assets/*/asset.json"))[0].parent
    shutil.copytree(first, first.with_name("covers.hook.stray"))


def _link_lock_out(root: Path) -> None:
    outside = root.parent / "lock-elsewhere.json"
    shutil.move(root / LOCK, outside)
    (root / LOCK).symlink_to(outside)


def _fifo_record(root: Path) -> None:
    record = sorted(root.glob("assets/*/asset.json"))[0]
    record.unlink()
    os.mkfifo(record)


# What a fresh clone's `check` and `check --strict` exit with after each change: a seal that does
# not hold (a tampered digest, a lock file gone) only costs the full assessment, which finds the
# records in order. An asset.json edited into another valid record still reads and its lock entry
# vouches: the purpose it states is for the next build to bring up to date, in both ways.
MUTATIONS: dict[str, tuple[Callable[[Path], None], int, int]] = {
    "nothing": (lambda root: None, 0, 0),
    "asset.json with conflict markers": (_break_record, 2, 2),
    "asset.json with other valid bytes": (_respace_record, 0, 0),
    "asset.json edited by hand": (_edit_record, 0, 0),
    "asset.json replaced by a FIFO": (_fifo_record, 2, 2),
    "an image lost": (_lose_image, 1, 1),
    "a template edited": (_edit_template, 1, 1),
    "the evidence edited": (_edit_evidence, 0, 1),
    "the persona edited": (_edit_persona, 1, 1),
    "an entry's record digest tampered with": (_edit_lock(_tamper_record_sha), 0, 0),
    "the inputs digest tampered with": (_edit_lock(_tamper_inputs), 0, 0),
    "an entry dropped from the lock file": (_edit_lock(_drop_entry), 0, 0),
    "an image dropped from an entry": (_edit_lock(_drop_image_of_entry), 0, 0),
    "the lock file deleted": (_drop_lock, 0, 0),
    "the lock file re-indented": (_reindent_lock, 0, 0),
    "the lock file a link out of the project": (_link_lock_out, 0, 0),
    "an orphan asset folder": (_add_orphan, 1, 1),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_fresh_clone_gets_the_answer_of_the_full_assessment(
    built: Path, tmp_path: Path, mutation: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    change, code, strict_code = MUTATIONS[mutation]
    clone = fresh_copy(built, tmp_path / "clone")
    change(clone)
    sealed, full = both_ways(clone, monkeypatch, capsys)
    assert sealed == full
    assert (sealed[0][0], sealed[1][0]) == (code, strict_code), sealed


Answer = tuple[tuple[int, str], tuple[int, str]]  # (exit code, output) of check and check --strict


def both_ways(
    clone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Answer, Answer]:
    """What a fresh clone's `check` and `check --strict` answer: as they run, then with every batch
    assessed in full."""

    def check(*options: str) -> tuple[int, str]:
        shutil.rmtree(clone / ".imgbuild", ignore_errors=True)
        capsys.readouterr()
        return run_cli(clone, "check", *options), capsys.readouterr().out

    sealed = check(), check("--strict")
    with monkeypatch.context() as m:
        m.setattr(noop, "_sealed", lambda *a: None)  # every batch assessed in full
        m.setattr(noop, "vouch", lambda *a: None)  # the project loaded (imgbuild.sealed)
        full = check(), check("--strict")
    return sealed, full


def _approved_then_edited(root: Path) -> Path:
    """Candidate 2 of ASSET approved, then an editable attribute changed and built: the asset's
    request is an edit of its approved image, made from the approval its lock entry states."""
    write_project(root)
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "2", "--pass", "all", "--by", "tester") == 0
    (root / "batches/covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    assert run_cli(root, "build") == 0
    assert _lock(root)["seal_sha256"] is not None
    return root


def test_a_rejection_that_takes_away_the_approval_an_edit_was_made_from_breaks_the_seal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Approving the edited candidate keeps the request (the approved edit stands); rejecting it
    leaves no approval, so the request is the base one again, which no image was made for."""
    root = _approved_then_edited(tmp_path / "work")
    assert run_cli(root, "approve", ASSET, "1", "--pass", "all", "--by", "tester") == 0
    assert _lock(root)["seal_sha256"] is not None
    assert run_cli(root, "reject", ASSET, "1", "--fail", "realism", "--by", "tester") == 0
    assert _lock(root)["seal_sha256"] is None
    sealed, full = both_ways(fresh_copy(root, tmp_path / "clone"), monkeypatch, capsys)
    assert sealed == full
    assert sealed[0][0] == 1 and sealed[0][1].startswith(f"changed: assets/{ASSET}: ")


def test_a_lock_entry_whose_approval_was_edited_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edit rule makes the request from the approval the lock entry states: without it, the
    request is the base one, which the full assessment finds unmade."""
    root = _approved_then_edited(tmp_path / "work")
    _edit_lock(lambda data: data["assets"][ASSET].update(approval=None))(root)
    sealed, full = both_ways(fresh_copy(root, tmp_path / "clone"), monkeypatch, capsys)
    assert sealed == full
    assert sealed[0][0] == 1


@pytest.fixture(scope="module")
def kept_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sealed lock file whose entry of ASSET vouches for an asset.json edited by hand (its
    purpose): a build kept the entry and sealed the edited bytes while it rebuilt another asset."""
    root = write_project(tmp_path_factory.mktemp("sealed") / "kept")
    assert run_cli(root, "build") == 0
    record = root / f"assets/{ASSET}/asset.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "purpose": "edited by hand"}, indent=2))
    next((root / "assets/covers.hook.cafe.lamp-light/images/candidates").glob("*.jpg")).unlink()
    assert run_cli(root, "build") == 0
    assert _lock(root)["assets"][ASSET]["record_sha256"] == _sha256(root / f"assets/{ASSET}/asset.json")
    return root


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_hash", "0" * 64),
        ("prompt_hash", "0" * 64),
        ("model", "image-seedream-v4.5-text"),
        ("attributes", {"fixed": {}, "vary": {}}),
        ("variant_test", "a-test"),
    ],
)
def test_a_lock_entry_whose_request_was_edited_is_not_trusted(
    kept_record: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: object,
) -> None:
    """An entry that no longer describes the request sends the full assessment to asset.json,
    which here states another purpose (outdated): the seal covers every field of an entry."""
    clone = fresh_copy(kept_record, tmp_path / "clone")
    assert both_ways(clone, monkeypatch, capsys)[0][0][0] == 0  # the entry vouches, both ways
    _edit_lock(lambda data: data["assets"][ASSET].update({field: value}))(clone)
    sealed, full = both_ways(clone, monkeypatch, capsys)
    assert sealed == full
    assert sealed[0][0] == 1 and sealed[0][1].startswith(f"outdated: assets/{ASSET}: purpose: ")


def test_imgbuild_s_own_code_is_one_of_the_inputs(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another imgbuild may make other requests of the same files: its seals are not trusted."""
    clone = fresh_copy(built, tmp_path / "clone")
    monkeypatch.setattr(imgbuild.cache, "code_digest", lambda: "another imgbuild")
    rendered: list[str] = []
    real = imgbuild.resolve._render
    monkeypatch.setattr(
        imgbuild.resolve, "_render", lambda p, prov, b, problems: rendered.append("x") or real(p, prov, b, problems)
    )
    assert run_cli(clone, "check") == 0
    assert rendered  # resolved in full


def test_a_review_decision_keeps_the_seal(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fresh_copy(built, tmp_path / "work")
    asset = sorted(_lock(root)["assets"])[0]
    assert run_cli(root, "approve", asset, "1", "--pass", "all", "--by", "tester") == 0
    entry = _lock(root)["assets"][asset]
    assert entry["approval"] is not None
    assert entry["record_sha256"] == _sha256(root / entry["asset_dir"] / "asset.json")
    assert _lock(root)["inputs_sha256"] == _lock(built)["inputs_sha256"]
    clone = fresh_copy(root, tmp_path / "clone")
    no_rendering_nor_records(monkeypatch)
    capsys.readouterr()
    assert run_cli(clone, "check") == 0


def test_a_lock_file_of_stale_entries_is_not_sealed(built: Path, tmp_path: Path) -> None:
    root = fresh_copy(built, tmp_path / "work")
    _edit_template(root)
    assert run_cli(root, "merge") == 1  # the lock file from the records, made for the old template
    assert (_lock(root)["inputs_sha256"], _lock(root)["seal_sha256"]) == (None, None)
    assert run_cli(root, "build") == 0
    assert _lock(root)["inputs_sha256"] == imgbuild.resolve.resolve(root).inputs["covers"]


def test_a_lock_file_written_before_seals_is_sealed_by_the_next_build(built: Path, tmp_path: Path) -> None:
    root = fresh_copy(built, tmp_path / "work")
    data = _lock(root)
    del data["inputs_sha256"]
    for entry in data["assets"].values():
        del entry["record_sha256"]
    (root / LOCK).write_text(json.dumps(data, indent=2))
    done = run_doit(root)
    assert done.returncode == 0 and "all 8 images up to date" in done.stdout
    assert _lock(root) == _lock(built)  # sealed again, the same bytes a build writes
    assert (root / LOCK).read_bytes() == (built / LOCK).read_bytes()


def test_the_approval_an_edit_was_made_from_is_sealed(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edit rule takes an approval from the lock entry: an approval dropped from the lock file
    (a merge that kept the other side's entry) makes other requests, so the seal no longer holds."""
    root = fresh_copy(built, tmp_path / "work")
    asset = sorted(_lock(root)["assets"])[0]
    assert run_cli(root, "approve", asset, "2", "--pass", "all", "--by", "tester") == 0
    (root / "batches/covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    assert run_cli(root, "build") == 0  # the approved asset edited from its approval, the others made anew
    assert _lock(root)["seal_sha256"] is not None
    clone = fresh_copy(root, tmp_path / "clone")
    capsys.readouterr()
    assert run_cli(clone, "check") == 0
    _edit_lock(lambda data: data["assets"][asset].update(approval=None))(clone)

    def check() -> tuple[int, str]:
        shutil.rmtree(clone / ".imgbuild", ignore_errors=True)
        capsys.readouterr()
        return run_cli(clone, "check"), capsys.readouterr().out

    sealed = check()
    with monkeypatch.context() as m:
        m.setattr(noop, "_sealed", lambda *a: None)
        full = check()
    assert sealed == full
    assert sealed[0] == 1 and f"changed: assets/{asset}" in sealed[1]


def test_merge_makes_the_requests_from_the_approvals_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A git merge that took main's lock file whole (its side never saw the approval) and the
    other side's asset.json (an approval given before main changed an editable attribute): the
    approval makes the asset's request an edit, which is not made. `imgbuild merge` writes the
    approval into the lock file, so it must work out the requests from it, not from the lock file
    it replaces: else it says every asset is current and seals the batch for the wrong request."""
    root = write_project(tmp_path / "work")
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "2", "--pass", "all", "--by", "tester") == 0
    record = root / f"assets/{ASSET}/asset.json"
    approved = json.loads(record.read_text())
    record.write_text(json.dumps({**approved, "approval": None}, indent=2))  # main's side: no approval
    _edit_lock(lambda data: data["assets"][ASSET].update(approval=None))(root)
    (root / "batches/covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    assert run_cli(root, "build") == 0  # every asset made for the new wardrobe, from scratch
    merged = json.loads(record.read_text())
    record.write_text(json.dumps({**merged, "approval": approved["approval"]}, indent=2))  # the merge
    capsys.readouterr()

    assert run_cli(root, "merge") == 1
    out = capsys.readouterr().out
    assert f"changed: assets/{ASSET}: " in out and "edit from approved candidate 2" in out
    assert _lock(root)["seal_sha256"] is None
    sealed, full = both_ways(fresh_copy(root, tmp_path / "clone"), monkeypatch, capsys)
    assert sealed == full
    assert sealed[0][0] == 1


def test_a_build_seals_no_entry_whose_approval_is_not_the_one_its_request_was_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same merge, then a build instead of `imgbuild merge`, with an image of the asset lost:
    the build makes the request from the lock entry (no approval), then rebuilds the entry from
    asset.json, which states the approval. Sealed, a clone would trust an entry whose approval
    makes another request (an edit) than the one it was made for."""
    root = write_project(tmp_path / "work")
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "2", "--pass", "all", "--by", "tester") == 0
    record = root / f"assets/{ASSET}/asset.json"
    approved = json.loads(record.read_text())
    record.write_text(json.dumps({**approved, "approval": None}, indent=2))
    _edit_lock(lambda data: data["assets"][ASSET].update(approval=None))(root)
    (root / "batches/covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    assert run_cli(root, "build") == 0
    merged = json.loads(record.read_text())
    record.write_text(json.dumps({**merged, "approval": approved["approval"]}, indent=2))
    (record.parent / max(merged["candidates"], key=lambda c: c["created"])["file"]).unlink()

    assert run_cli(root, "build") == 0
    assert _lock(root)["assets"][ASSET]["approval"] is not None
    assert _lock(root)["seal_sha256"] is None
    sealed, full = both_ways(fresh_copy(root, tmp_path / "clone"), monkeypatch, capsys)
    assert sealed == full
    assert sealed[0][0] == 1
    assert run_cli(root, "build") == 0  # the edit, made from the approval the entry states
    assert _lock(root)["seal_sha256"] is not None
    capsys.readouterr()
    assert run_cli(fresh_copy(root, tmp_path / "again"), "check") == 0


def test_another_jinja_release_is_one_of_the_inputs(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jinja renders the prompts: a clone with another release of it renders them anew."""
    import jinja2

    before = imgbuild.resolve.resolve(fresh_copy(built, tmp_path / "a"), use_cache=False).inputs
    monkeypatch.setattr(jinja2, "__version__", "0.0-another")
    after = imgbuild.resolve.resolve(fresh_copy(built, tmp_path / "b"), use_cache=False).inputs
    assert before.keys() == after.keys() and before["covers"] != after["covers"]


def test_a_lock_file_whose_bytes_changed_is_sealed_again_by_the_next_build(built: Path, tmp_path: Path) -> None:
    """The seal is of the bytes: a lock file re-indented by an editor says the same but is not
    trusted, and the next build writes it as it writes every lock file, sealed."""
    root = fresh_copy(built, tmp_path / "work")
    _reindent_lock(root)
    assert run_cli(root, "build") == 0
    assert (root / LOCK).read_bytes() == (built / LOCK).read_bytes()


# -- the sources: a fresh clone's check that loads nothing (imgbuild.sealed) ------------------------


def _answered_by_the_lock_files(clone: Path, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, for each check, whether the lock files alone answered it."""
    taken: list[bool] = []
    real = noop.vouch

    def vouch(root: Path) -> object:
        found = real(root)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(noop, "vouch", vouch)
    return taken


def compared(
    clone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[tuple[int, int], bool]:
    """The exit codes of a fresh clone's `check` and `check --strict`, once it is asserted that
    they answer exactly as the full assessment does, and whether the lock files alone answered."""
    taken = _answered_by_the_lock_files(clone, monkeypatch)
    sealed, full = both_ways(clone, monkeypatch, capsys)
    assert sealed == full
    assert taken[:2] in ([True, True], [False, False], []), taken
    return (sealed[0][0], sealed[1][0]), bool(taken) and taken[0]


def test_a_build_names_the_files_each_batch_was_resolved_from(built: Path) -> None:
    sources = _lock(built)["sources"]
    assert sources["files"] == {
        name: _sha256(built / name)
        for name in ("batches/covers.yaml", "evidence/mia.md", "personas/mia.yaml", "templates/cover.j2")
    }
    assert sources["config_sha256"] == _sha256(built / "imgbuild.yaml")
    assert (sources["provider"], sources["config_provider"], sources["output"]) == ("preview", "preview", "assets")
    assert sources["evidence"] == [
        {"path": "evidence/mia.md", "anchor": None, "sha256": _sha256(built / "evidence/mia.md")}
    ]


def test_a_fresh_clone_is_checked_without_loading_the_project(built: Path, tmp_path: Path) -> None:
    """In a process of its own, as CI runs it: the YAML parser, the schema validator and Jinja
    are never imported, and the answer is the full assessment's."""
    clone = fresh_copy(built, tmp_path / "clone")
    script = (
        "import sys\nfrom imgbuild.main import main\ncode = main(['check'])\n"
        "print(sorted(m for m in ('yaml', 'jsonschema', 'jinja2', 'imgbuild.spec.load') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "IMGBUILD_PROVIDER"}
    done = subprocess.run([sys.executable, "-c", script], cwd=clone, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["imgbuild check: all 4 assets match their manifests", "[]"]
    assert not (clone / ".imgbuild").exists() or not any((clone / ".imgbuild").rglob("*.json"))


def _add_batch(root: Path) -> None:
    (root / "batches/extra.yaml").write_text(BATCH.replace("covers for tests", "more covers"))


def _add_broken_batch(root: Path) -> None:
    (root / "batches/extra.yaml").write_text("purpose: [\n")


def _add_yml(root: Path) -> None:
    (root / "batches/extra.yml").write_text(BATCH)


def _add_unused_persona(root: Path, text: str) -> None:
    (root / "personas/zoe.yaml").write_text(text.replace("id: mia", "id: zoe"))


def _comment(relative: str, text: str = "# a comment: the same requests\n") -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / relative
        path.write_text(text + path.read_text())

    return edit


def _set_batch(text: str) -> Callable[[Path], None]:
    return lambda root: (root / "batches/covers.yaml").write_text(text)


def _link_out(folder: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        outside = root.parent / f"{folder}-elsewhere"
        shutil.move(root / folder, outside)
        (root / folder).symlink_to(outside, target_is_directory=True)

    return edit


def _link_in(relative: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / relative
        (root / "kept").mkdir()
        shutil.move(path, root / "kept" / path.name)
        path.symlink_to(root / "kept" / path.name)

    return edit


def _edit_sources(change: Callable[[dict], None]) -> Callable[[Path], None]:  # type: ignore[type-arg]
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        change(data["sources"])

    return _edit_lock(edit)


def _forget_a_file(sources: dict) -> None:  # type: ignore[type-arg]
    del sources["files"]["templates/cover.j2"]


def _other_made_by(sources: dict) -> None:  # type: ignore[type-arg]
    sources["made_by"] = "another imgbuild"


def _copy_lock_to_new_batch(root: Path) -> None:
    shutil.copy(root / "batches/covers.yaml", root / "batches/extra.yaml")
    shutil.copy(root / LOCK, root / "batches/extra.lock.json")


def _config(text: str) -> Callable[[Path], None]:
    return lambda root: (root / "imgbuild.yaml").write_text(text)


# What a fresh clone's `check` and `check --strict` exit with after a change to the project's files,
# and whether the lock files alone may answer. Whatever the way, the answer is the full
# assessment's: anything the sources do not vouch for is handed to it.
PROJECT_MUTATIONS: dict[str, tuple[Callable[[Path], None], int, int, bool]] = {
    "nothing": (lambda root: None, 0, 0, True),
    "an unused template added": (lambda root: (root / "templates/other.j2").write_text("x"), 0, 0, True),
    "an asset.json edited by hand": (_edit_record, 0, 0, False),
    "a new batch, not built": (_add_batch, 1, 1, False),
    "a new batch that is not YAML": (_add_broken_batch, 2, 2, False),
    "a new batch copied with its lock file": (_copy_lock_to_new_batch, 1, 1, False),
    "a *.yml file beside the manifests": (_add_yml, 0, 0, False),
    "an unused persona, valid": (lambda root: _add_unused_persona(root, PERSONA), 0, 0, False),
    "an unused persona, broken": (lambda root: _add_unused_persona(root, "id: zoe\n"), 2, 2, False),
    "a comment in the manifest": (_comment("batches/covers.yaml"), 0, 0, False),
    "a comment in the persona": (_comment("personas/mia.yaml"), 0, 0, False),
    "a comment in imgbuild.yaml": (_comment("imgbuild.yaml"), 0, 0, False),
    "imgbuild.yaml gone (it marks the project)": (lambda root: (root / "imgbuild.yaml").unlink(), 2, 2, False),
    "imgbuild.yaml invalid": (_config("provider: [\n"), 2, 2, False),
    "imgbuild.yaml names another batches folder": (_config("batches_dir: other\n"), 1, 1, False),
    "the manifest invalid": (_set_batch("purpose: covers\n"), 2, 2, False),
    "the manifest names other values": (_set_batch(BATCH.replace("cream sweater", "navy blazer")), 1, 1, False),
    "the template edited": (_edit_template, 1, 1, False),
    "the evidence edited": (_edit_evidence, 0, 1, False),
    "the evidence gone": (lambda root: (root / "evidence/mia.md").unlink(), 2, 2, False),
    "the persona edited": (_edit_persona, 1, 1, False),
    "the personas folder a link out of the project": (_link_out("personas"), 2, 2, False),
    "the templates folder a link out of the project": (_link_out("templates"), 2, 2, False),
    "the manifest a link inside the project": (_link_in("batches/covers.yaml"), 0, 0, False),
    "a file left out of the sources": (_edit_sources(_forget_a_file), 0, 0, False),
    "the sources made by another imgbuild": (_edit_sources(_other_made_by), 0, 0, False),
    "an image lost": (_lose_image, 1, 1, False),
    "an orphan asset folder": (_add_orphan, 1, 1, True),
}


@pytest.mark.parametrize("mutation", PROJECT_MUTATIONS)
def test_a_fresh_clone_whose_files_changed_gets_the_answer_of_the_full_assessment(
    built: Path, tmp_path: Path, mutation: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    change, code, strict_code, fast = PROJECT_MUTATIONS[mutation]
    clone = fresh_copy(built, tmp_path / "clone")
    change(clone)
    assert compared(clone, monkeypatch, capsys) == ((code, strict_code), fast)


@pytest.mark.parametrize(("provider", "fast"), [("preview", True), ("no-such-provider", False), ("fal", False)])
def test_the_provider_a_check_picks_is_one_of_the_sources(
    built: Path,
    tmp_path: Path,
    provider: str,
    fast: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """IMGBUILD_PROVIDER picks the provider the requests are for: another one is assessed in full."""
    clone = fresh_copy(built, tmp_path / "clone")
    monkeypatch.setenv("IMGBUILD_PROVIDER", provider)
    assert compared(clone, monkeypatch, capsys)[1] is fast


def test_a_comment_in_a_manifest_is_in_the_next_build_s_sources(built: Path, tmp_path: Path) -> None:
    """The same requests, other bytes: the build writes the lock file's sources anew, so the
    next fresh clone is checked from them again."""
    root = fresh_copy(built, tmp_path / "work")
    _comment("batches/covers.yaml")(root)
    assert run_cli(root, "build") == 0
    assert run_cli(root, "build") == 0  # the no-op index in place: the sources were written before
    assert _lock(root)["sources"]["files"]["batches/covers.yaml"] == _sha256(root / "batches/covers.yaml")
    assert _lock(root)["inputs_sha256"] == _lock(built)["inputs_sha256"]
    assert noop.vouch(fresh_copy(root, tmp_path / "clone")) is not None


def test_a_build_that_warned_names_no_sources(built: Path, tmp_path: Path) -> None:
    """A check that loads nothing would not show the warning: the lock file then names no sources
    (and the next build without the warning names them)."""
    root = fresh_copy(built, tmp_path / "work")
    _add_yml(root)
    assert run_cli(root, "build") == 0
    assert _lock(root)["sources"] is None and _lock(root)["seal_sha256"] is not None
    (root / "batches/extra.yml").unlink()
    assert run_cli(root, "build") == 0
    assert _lock(root)["sources"]["files"]["batches/covers.yaml"] == _sha256(root / "batches/covers.yaml")


def test_a_template_name_computed_at_render_time_names_no_sources(tmp_path: Path) -> None:
    """Which templates such a batch loads depends on what the folder holds, not only on bytes."""
    template = '{% include "parts/" ~ attrs.lighting.split()[0] ~ ".j2" ignore missing %}' + TEMPLATE
    root = write_project(tmp_path / "p", templates={"cover.j2": template, "parts/morning.j2": "Soft. "})
    assert run_cli(root, "build") == 0
    lock = _lock(root)
    assert lock["seal_sha256"] is not None and lock["sources"] is None


def _built(root: Path, **files: dict[str, str] | str) -> Path:
    write_project(root, **files)  # type: ignore[arg-type]
    assert run_cli(root, "build") == 0
    return root


@pytest.mark.parametrize(
    "config",
    ["batches_dir: x/../batches\n", "personas_dir: x/../personas\n", "templates_dir: x/../templates\n"],
)
def test_a_folder_named_through_dot_dot_is_the_same_folder_in_a_clone_without_it(
    tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """imgbuild.yaml's folders are taken lexically: `x/../templates` is templates/ for every
    reader, in a clone without x too (git keeps no empty folder). Before, the loader found the
    template and the renderer did not (exit 1, a bare TemplateNotFound)."""
    root = tmp_path / "origin"
    (root / "x").mkdir(parents=True)
    _built(root, config=config)
    assert _lock_at(root)["sources"] is not None
    clone = fresh_copy(root, tmp_path / "clone")
    (clone / "x").rmdir()
    assert compared(clone, monkeypatch, capsys) == ((0, 0), True)


def _lock_at(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(next(root.rglob("covers.lock.json")).read_text(encoding="utf-8"))


def test_evidence_named_through_dot_dot_names_no_sources(tmp_path: Path) -> None:
    root = tmp_path / "origin"
    (root / "x").mkdir(parents=True)
    _built(
        root,
        batches={"covers": BATCH.replace("path: evidence/mia.md", "path: x/../evidence/mia.md")},
    )
    assert _lock(root)["sources"] is None


def test_a_persona_named_only_as_evidence_is_not_vouched_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch citing another persona's file as evidence hashes that file, not the persona's own
    evidence: the persona is still validated by a load."""
    bob = PERSONA.replace("id: mia", "id: bob").replace("evidence/mia.md", "evidence/bob.md")
    batch = BATCH.replace("  - path: evidence/mia.md\n", "  - path: evidence/mia.md\n  - path: personas/bob.yaml\n")
    root = _built(
        tmp_path / "origin",
        batches={"covers": batch},
        personas={"mia": PERSONA, "bob": bob},
        evidence={"mia.md": "# Mia benchmark\n", "bob.md": "# Bob benchmark\n"},
    )
    assert _lock(root)["sources"]["persona"] == "personas/mia.yaml"
    clone = fresh_copy(root, tmp_path / "clone")
    (clone / "evidence/bob.md").unlink()
    assert compared(clone, monkeypatch, capsys) == ((2, 2), False)


def test_imgbuild_yaml_is_hashed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = "#" * ((1 << 20) - 1) + "\n"  # 1 MiB exactly: what was read of it before, whole
    root = _built(tmp_path / "origin", config=config)
    assert _lock(root)["sources"]["config_sha256"] == _sha256(root / "imgbuild.yaml")
    clone = fresh_copy(root, tmp_path / "clone")
    with (clone / "imgbuild.yaml").open("a") as file:
        file.write("batches_dir: [\n")
    assert compared(clone, monkeypatch, capsys) == ((2, 2), False)


def test_a_batch_with_reference_images_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reference images are decoded when a project loads: they are sources."""
    from PIL import Image

    batch = BATCH.replace("    candidates: 2\n", "    candidates: 2\n    references:\n      - path: refs/face.png\n")
    root = tmp_path / "origin"
    (root / "refs").mkdir(parents=True)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(root / "refs/face.png")
    _built(root, batches={"covers": batch})
    sources = _lock(root)["sources"]
    assert sources["files"]["refs/face.png"] == _sha256(root / "refs/face.png")
    assert sources["made_by"] == _lock(_built(tmp_path / "plain"))["sources"]["made_by"]  # no library per file kind
    clone = fresh_copy(root, tmp_path / "clone")
    assert compared(clone, monkeypatch, capsys) == ((0, 0), True)
    (clone / "refs/face.png").write_bytes(b"not an image")
    assert compared(clone, monkeypatch, capsys) == ((2, 2), False)


def test_a_batch_whose_rendering_warned_is_loaded_by_check_and_not_rendered_by_doit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An attribute no prompt uses warns when the batch renders. The lock file's sources say so:
    a clone's check renders the batch to show it, and a clone's first doit, which has nothing to
    show, trusts the seal as before instead of rendering the batch to learn its sources."""
    template = TEMPLATE.replace("wearing a {{ attrs.wardrobe }},\n", "")
    root = _built(tmp_path / "origin", templates={"cover.j2": template})
    sources = _lock(root)["sources"]
    assert sources["warned"] is True
    clone = fresh_copy(root, tmp_path / "clone")
    assert compared(clone, monkeypatch, capsys) == ((0, 0), False)
    shutil.rmtree(clone / ".imgbuild", ignore_errors=True)
    monkeypatch.setattr(imgbuild.resolve, "_render", lambda *a: pytest.fail("a prompt was rendered"))
    assert noop.source(clone, noop.BUILD).counts == {"covers": 8}


@pytest.mark.parametrize(
    "config",
    [
        "batches_dir: batches   # the manifests\n",
        "# Windows line ends\r\nbatches_dir: batches\r\npersonas_dir: personas\r\n",
        "batches_dir: 'batches'\n",  # quoted: not read without YAML, so the project is loaded
    ],
)
def test_imgbuild_yaml_as_people_write_it(
    tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where the manifests are is read from imgbuild.yaml without YAML: a comment or CRLF line
    ends keep the fast way; what the pattern cannot read plainly hands the check to a load."""
    root = tmp_path / "origin"
    root.mkdir()
    (root / "imgbuild.yaml").write_bytes(config.encode())
    _built(root, config=None)  # type: ignore[arg-type]
    clone = fresh_copy(root, tmp_path / "clone")
    assert compared(clone, monkeypatch, capsys) == ((0, 0), "'" not in config)


def test_a_deleted_batch_with_its_own_output_leaves_orphans_that_check_and_prune_find(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its lock file says where its asset folders are; no manifest names that folder any more.
    Before, neither `check` nor `prune` looked there (prune removed only the lock file)."""
    other = BATCH.replace("output: assets", "output: other").replace("covers for tests", "posters")
    root = _built(tmp_path / "origin", batches={"covers": BATCH, "posters": other})
    (root / "batches/posters.yaml").unlink()
    clone = fresh_copy(root, tmp_path / "clone")
    assert compared(clone, monkeypatch, capsys) == ((1, 1), False)  # a lock file without its manifest
    capsys.readouterr()
    assert run_cli(root, "check") == 1
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("orphaned: other/posters.hook.") for line in lines) == 4, lines
    assert run_cli(root, "prune", "--yes") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "removed batches/posters.lock.json (its batch manifest is gone)"
    assert not any((root / "other").iterdir())
    assert run_cli(root, "check") == 0


def test_a_deleted_batch_s_lock_file_is_data_when_it_names_folders(tmp_path: Path) -> None:
    """A lock file that names asset folders outside the project, or with a NUL byte, makes `check`
    look at none of them (it lists the project's own folders only)."""
    root = _built(tmp_path / "origin")
    data = _lock(root)
    entry = next(iter(data["assets"].values()))
    for name, asset_dir in {"out": "../outside/x", "nul": "a\u0000b/x", "abs": "/etc/x"}.items():
        data["assets"] = {"x": {**entry, "asset_dir": asset_dir}}
        (root / f"batches/{name}.lock.json").write_text(json.dumps(data))
    (tmp_path / "outside/x").mkdir(parents=True)
    (tmp_path / "outside/x/asset.json").write_text("{}")
    assert run_cli(root, "check") == 0
