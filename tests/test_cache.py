"""The resolution cache: used only while every input is exactly as it was."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import pytest
from helpers import BATCH, TEMPLATE, write_project
from PIL import Image

from imgbuild import cache
from imgbuild.requests import ImageRequest
from imgbuild.resolve import Resolution, Spec, resolve


def age(root: Path, seconds: float = 60) -> None:
    """Make every file look older than the racy window (as files are between real edits)."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if ".imgbuild" not in path.parts:
            os.utime(path, (past, past))


def cached(root: Path) -> Resolution | None:
    """The resolution the cache holds, when the spec and every batch's requests are hits."""
    root = root.resolve()
    key = cache.cache_key(root, None)
    spec = cache.load_spec(root, key, Spec)
    if spec is None:
        return None
    requests = {}
    for batch in spec.project.batches:
        hit = cache.load_batch(root, key, batch.id, spec.digests[batch.id], tuple[ImageRequest, ...])
        if hit is None:
            return None
        requests[batch.id] = hit[0]
    return Resolution(spec.project, spec.provider, requests)


def test_unchanged_inputs_hit_the_cache(tmp_path: Path) -> None:
    write_project(tmp_path)
    age(tmp_path)
    first = resolve(tmp_path)
    assert (tmp_path / ".imgbuild/cache/project.json").is_file()
    assert (tmp_path / ".imgbuild/cache/batches/covers.json").is_file()
    hit = cached(tmp_path)
    assert hit is not None
    assert hit == first
    # The manifest lines (which messages cite) come back too, though equality leaves them out.
    assert hit.batch("covers").lines == first.batch("covers").lines != {}
    assert hit.project.personas["mia"].lines == first.project.personas["mia"].lines != {}
    assert resolve(tmp_path).requests["covers"][0].request_hash == first.requests["covers"][0].request_hash


def test_fresh_inputs_are_not_cached(tmp_path: Path) -> None:
    write_project(tmp_path)  # just written: younger than the racy window
    resolve(tmp_path)
    assert not (tmp_path / ".imgbuild/cache/project.json").exists()


@pytest.mark.parametrize(
    "change",
    ["template-same-size", "new-batch", "evidence", "removed-config", "new-template-subfolder-file"],
)
def test_any_input_change_misses(tmp_path: Path, change: str) -> None:
    write_project(tmp_path, config="concurrency: 2\n")
    age(tmp_path)
    before = resolve(tmp_path)
    assert cached(tmp_path) is not None
    if change == "template-same-size":
        text = TEMPLATE.replace("Photo of", "Shot  of")
        assert len(text) == len(TEMPLATE)
        (tmp_path / "templates/cover.j2").write_text(text)
    elif change == "new-batch":
        (tmp_path / "batches/more.yaml").write_text(BATCH)
    elif change == "evidence":
        (tmp_path / "evidence/mia.md").write_text("# changed\n")
    elif change == "removed-config":
        (tmp_path / "imgbuild.yaml").unlink()
    else:
        (tmp_path / "templates/parts").mkdir()
        (tmp_path / "templates/parts/x.j2").write_text("x")
    assert cached(tmp_path) is None
    after = resolve(tmp_path)
    if change == "template-same-size":
        assert after.requests["covers"][0].prompt.startswith("Shot of")
    if change == "new-batch":
        assert set(after.requests) == {"covers", "more"}
    if change == "evidence":
        assert after.requests["covers"][0].source_basis != before.requests["covers"][0].source_basis


def test_provider_choice_is_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path)
    age(tmp_path)
    resolve(tmp_path)
    assert cached(tmp_path) is not None
    monkeypatch.setenv("IMGBUILD_PROVIDER", "preview")
    assert cached(tmp_path) is None


def test_warnings_are_replayed_on_a_hit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_project(tmp_path, batches={"covers": BATCH.replace("purpose:", "purpse: x\npurpose:")})
    age(tmp_path)
    with caplog.at_level(logging.WARNING, logger="imgbuild"):
        resolve(tmp_path)
        first = list(caplog.messages)
        caplog.clear()
        assert cached(tmp_path) is not None
        caplog.clear()
        resolve(tmp_path)
    assert first == ["batches/covers.yaml:1 purpse: unknown key, ignored — did you mean 'purpose'?"]
    assert caplog.messages == first


def test_a_broken_cache_file_is_ignored(tmp_path: Path) -> None:
    write_project(tmp_path)
    age(tmp_path)
    good = resolve(tmp_path)
    (tmp_path / ".imgbuild/cache/project.json").write_bytes(b"not json")
    assert cached(tmp_path) is None
    assert resolve(tmp_path) == good


def test_a_changed_reference_image_misses(tmp_path: Path) -> None:
    batch = BATCH.replace("    candidates: 2\n", "    candidates: 2\n    references:\n      - path: refs/face.png\n")
    write_project(tmp_path, batches={"covers": batch})
    (tmp_path / "refs").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "refs" / "face.png")  # references must decode
    age(tmp_path)
    first = resolve(tmp_path)
    assert cached(tmp_path) is not None
    Image.new("RGB", (8, 8), (4, 5, 6)).save(tmp_path / "refs" / "face.png")
    age(tmp_path)
    assert cached(tmp_path) is None
    again = resolve(tmp_path)
    assert again.requests["covers"][0].references[0].sha256 != first.requests["covers"][0].references[0].sha256
    assert again.requests["covers"][0].request_hash != first.requests["covers"][0].request_hash


def test_a_change_to_imgbuild_itself_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit to imgbuild's code (say, to normalize_prompt) can change every request hash with no
    input changing: the cache made by the old code must not be served to the new."""
    import imgbuild.resolve

    write_project(tmp_path)
    age(tmp_path)
    first = resolve(tmp_path)
    assert cached(tmp_path) is not None
    calls = []
    real = imgbuild.resolve._render
    monkeypatch.setattr(imgbuild.resolve, "_render", lambda *a: calls.append(a) or real(*a))
    resolve(tmp_path)
    assert calls == []  # the same code: served from the cache
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "the code after an edit")
    assert cached(tmp_path) is None
    assert resolve(tmp_path) == first
    assert len(calls) == 1  # resolved afresh, and stored again under the new code's key
    assert cached(tmp_path) is not None


@pytest.mark.parametrize("change", ["edit", "touch", "new-module", "models", "schema"])
def test_the_code_stamps_follow_the_code(tmp_path: Path, change: str) -> None:
    """On a copy of the package (the checkout is never modified)."""
    import shutil

    from imgbuild.spec.schema import schema_dir

    package, schemas = tmp_path / "imgbuild", tmp_path / "schemas"
    shutil.copytree(Path(cache.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(schema_dir(), schemas)
    before = cache.code_stamps(package, schemas)
    names = [name for name, _, _ in before]
    assert {"cache.py", "spec/render.py", "data/models.json", "schemas/batch.schema.json"} <= set(names)
    assert len(names) == len(set(names)) and not any("__pycache__" in n for n in names)
    assert cache.code_stamps(package, schemas) == before
    later = time.time() + 10
    if change == "edit":
        render = package / "spec" / "render.py"  # normalize_prompt changes: so would every request hash
        text = render.read_text()
        assert text.count('" ".join(text.split())') == 1
        render.write_text(text.replace('" ".join(text.split())', '" ".join(text.split()).strip()'))
    elif change == "touch":
        os.utime(package / "requests.py", (later, later))
    elif change == "new-module":
        (package / "extra.py").write_text("X = 1\n")
    elif change == "models":
        os.utime(package / "data" / "models.json", (later, later))
    else:
        os.utime(schemas / "batch.schema.json", (later, later))
    assert cache.code_stamps(package, schemas) != before


def test_the_code_fingerprint_is_computed_once() -> None:
    assert cache.code_fingerprint() == cache.code_fingerprint()
    assert cache.code_fingerprint.cache_info().misses <= 1


@pytest.mark.parametrize("size", [0, 100, 65535, 65536, 65537, 3 * 65536, (1 << 20) - 1, 1 << 20])
def test_the_content_digest_reads_a_file_to_its_end(tmp_path: Path, size: int) -> None:
    """imgbuild.sealed hashes every asset.json with it: any size up to 1 MiB is read whole."""
    path = tmp_path / "asset.json"
    data = os.urandom(size)
    path.write_bytes(data)
    assert cache.content_sha256(str(path)) == (None, hashlib.sha256(data).hexdigest())
    assert cache.content_sha256(str(path)) == (None, cache.stamped_sha256(str(path))[1])  # type: ignore[index]


def test_the_content_digest_gives_up_what_it_cannot_hash_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * ((1 << 20) + 65537))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert cache.content_sha256(str(big)) is None
    assert cache.content_sha256(str(tmp_path)) is None  # a folder
    assert cache.content_sha256(str(tmp_path / "missing.json")) is None
    assert cache.content_sha256(f"{tmp_path}/nul\0.json") is None
    assert cache.content_sha256(str(fifo)) == (None, hashlib.sha256(b"").hexdigest())  # never blocks
