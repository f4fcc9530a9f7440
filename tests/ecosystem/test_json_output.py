"""`--json` of plan, check, status, ls and explain: every document validates against its schema in
schemas/output/, and says what the text says, on a project with assets in every common state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, REPO, run_cli, write_project
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

OUTPUT_SCHEMAS = REPO / "schemas" / "output"
COMMANDS = ("plan", "check", "status", "ls", "explain")
APPROVED = "covers.hook.home-office.morning-light"
CHANGED = "covers.hook.cafe.lamp-light"


def validator(command: str) -> Draft202012Validator:
    """The command's schema, with the others registered so that their `$ref`s resolve."""
    schemas = {p.name: json.loads(p.read_text()) for p in OUTPUT_SCHEMAS.glob("*.schema.json")}
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    schema = schemas[f"{command}.schema.json"]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def run_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = run_cli(root, *args)
    out = capsys.readouterr().out
    document = json.loads(out)  # the whole of stdout is one document
    errors = sorted(validator(args[0]).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return code, document


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("built") / "p")
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", APPROVED, "1", "--pass", "all", "--by", "ana") == 0
    return root


@pytest.fixture
def project(built_once: Path, tmp_path: Path) -> Path:
    """One asset approved, one changed (its lighting value edited), one orphan, evidence drifted."""
    root = tmp_path / "p"
    shutil.copytree(built_once, root)
    write_project(
        root,
        batches={
            "covers": BATCH.replace(
                "lighting: [morning light, lamp light]", "lighting: [morning light, lamp light]\n  # edited"
            )
        },
    )
    (root / "evidence" / "mia.md").write_text("# Mia benchmark, revised\n")
    shutil.copytree(root / "assets" / CHANGED, root / "assets" / "covers.hook.gone")
    return root


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    names = sorted(p.name for p in OUTPUT_SCHEMAS.glob("*.schema.json"))
    assert names == sorted(f"{c}.schema.json" for c in COMMANDS)
    for command in COMMANDS:
        validator(command)


def test_ls_json_matches_the_schema_and_the_states(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(project, capsys, "ls", "--json")
    assert code == 0
    rows = {row["id"]: row for row in doc["assets"]}
    assert rows[APPROVED]["review"] == "approved"
    assert rows["covers.hook.gone"]["state"] == "orphaned"
    assert len(rows) == 5


def test_check_json_points_at_the_manifest_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(project, capsys, "check", "--json")
    assert code == doc["exit_code"] == 1  # the orphan fails it; drifted evidence only under --strict
    drift = [f for f in doc["findings"] if f["kind"] == "evidence"]
    assert len(drift) == 4
    assert {(f["file"], f["line"], f["fails"]) for f in drift} == {("evidence/mia.md", None, False)}
    batch = project / "batches" / "covers.yaml"
    batch.write_text(batch.read_text().replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    code, doc = run_json(project, capsys, "check", "--json", "--approved")
    assert code == doc["exit_code"] == 1
    changed = [f for f in doc["findings"] if f["kind"] == "changed"]
    assert len(changed) == 4
    wardrobe_line = batch.read_text().splitlines().index("  wardrobe: navy blazer") + 1
    assert {(f["file"], f["line"]) for f in changed} == {("batches/covers.yaml", wardrobe_line)}
    kinds = {f["kind"] for f in doc["findings"]}
    assert kinds == {"changed", "orphaned", "unapproved", "stale approval"}
    # The same findings as the text: one line each.
    assert run_cli(project, "check", "--approved") == 1
    text = capsys.readouterr().out.splitlines()
    assert [line for line in text if not line.startswith("imgbuild check:")] == [
        f"{f['kind']}: {f['asset_dir']}: {f['message']}" for f in doc["findings"]
    ]
    assert [line for line in text if line.startswith("imgbuild check:")] == doc["summary"]


def test_check_json_passes_on_a_current_project(built_once: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(built_once, capsys, "check", "--format", "json")
    assert (code, doc["exit_code"], doc["findings"]) == (0, 0, [])
    assert doc["summary"] == ["imgbuild check: all 4 assets match their manifests"]


def test_plan_json_counts_what_a_build_would_make(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = project / "batches" / "covers.yaml"
    batch.write_text(
        batch.read_text().replace("lamp light]\n", "lamp light]\n  # again\n").replace("candidates: 2", "candidates: 3")
    )
    code, doc = run_json(project, capsys, "plan", "--json")
    assert code == 0
    (covers,) = doc["batches"]
    assert (covers["assets"], covers["candidates"], covers["images"], covers["calls"]) == (4, 12, 4, 4)
    assert covers["why"] == {"incomplete": 4}
    assert {s["id"]: s["todo"] for s in covers["stale"]}[CHANGED] == [3]
    assert doc["provider"] == "preview" and doc["paid"] is False
    assert [o["asset_dir"] for o in doc["orphans"]] == ["assets/covers.hook.gone"]


def test_status_json_counts_per_batch(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(project, capsys, "status", "--json")
    assert code == 0
    (covers,) = doc["batches"]
    assert covers["states"] == {"current": 4}
    assert covers["reviews"] == {"approved": 1, "unreviewed": 3}
    assert doc["orphans"] == 1


def test_explain_json_names_the_changed_field_and_its_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = project / "batches" / "covers.yaml"
    batch.write_text(batch.read_text().replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    code, doc = run_json(project, capsys, "explain", APPROVED, "--json")
    assert code == 0
    assert doc["fields"] == ["fixed.wardrobe", "prompt"]
    assert doc["where"] == {"file": "batches/covers.yaml", "line": 11}
    assert doc["approval"]["stale"] is True and doc["approval"]["by"] == "ana"
    assert doc["next_build"].startswith("edit from approved candidate 1")


def test_plan_json_of_a_selection_has_the_whole_projects_total_too(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = project / "batches" / "covers.yaml"
    batch.write_text(batch.read_text().replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    code, doc = run_json(project, capsys, "plan", "covers:*cafe*", "--json")
    assert code == 0
    assert doc["selection"] == ["covers:*cafe*"]
    (covers,) = doc["batches"]
    assert (covers["assets"], covers["assets_in_batch"]) == (2, 4)
    assert doc["images"] == 4 and doc["whole_project"] == {"images": 8, "cost_usd": doc["whole_project"]["cost_usd"]}
