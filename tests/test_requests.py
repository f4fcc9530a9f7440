"""The normalized request and its hash: pixels in, everything else out."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import BATCH, write_project

from imgbuild.requests import HASHED_FIELDS, canonical_json, sha256_text
from imgbuild.resolve import resolve


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == '{"a":[1,{"c":"é","d":2}],"b":1}'


def test_request_record_and_hash(tmp_path: Path) -> None:
    write_project(tmp_path)
    req = resolve(tmp_path).requests["covers"][0]
    record = req.record()
    assert record["prompt"] == (
        "Photo of Mia Tan, oval face, light freckles, wearing a cream sweater, in a home office, morning light."
    )
    assert record["prompt_hash"] == sha256_text(record["prompt"])
    assert record["model"] == "image-seedream-v5-lite-text"
    assert record["provider_model"] == "preview/seedream-5.0-lite"
    assert record["size"] == "2048x2048"
    assert record["quality"] == {"tier": "draft", "reason": "tests only need small placeholders"}
    assert record["source_basis"][0]["path"] == "evidence/mia.md"
    assert req.request_hash == sha256_text(canonical_json({k: record[k] for k in HASHED_FIELDS}))
    json.dumps(record)  # plain JSON all the way down


def test_hash_ignores_evidence_content_and_candidate_count(tmp_path: Path) -> None:
    write_project(tmp_path)
    before = resolve(tmp_path).requests["covers"][0]
    write_project(
        tmp_path,
        evidence={"mia.md": "# Mia benchmark, revised\n"},
        batches={"covers": BATCH.replace("candidates: 2", "candidates: 5")},
    )
    after = resolve(tmp_path).requests["covers"][0]
    assert after.request_hash == before.request_hash
    assert after.source_basis[0].sha256 != before.source_basis[0].sha256  # recorded, not hashed


def test_hash_follows_what_changes_pixels(tmp_path: Path) -> None:
    write_project(tmp_path)
    base = resolve(tmp_path).requests["covers"][0].request_hash
    write_project(tmp_path, batches={"covers": BATCH.replace("quality: draft", "quality: high")})
    assert resolve(tmp_path).requests["covers"][0].request_hash != base
    write_project(tmp_path, batches={"covers": BATCH.replace("output_format: jpeg", "output_format: png")})
    assert resolve(tmp_path).requests["covers"][0].request_hash != base
    write_project(tmp_path)
    assert resolve(tmp_path).requests["covers"][0].request_hash == base
