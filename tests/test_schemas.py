"""The schemas are the source of truth, and the registries fill their enums."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from helpers import REPO

from imgbuild.models import model_keys
from imgbuild.providers import provider_names


def schema(name: str) -> dict:
    return json.loads((REPO / "schemas" / f"{name}.schema.json").read_text())


def test_enums_in_schema_files_match_the_registries() -> None:
    model = schema("batch")["properties"]["model"]
    assert model["then"]["enum"] == model["items"]["enum"] == model_keys()
    assert schema("project")["properties"]["provider"]["enum"] == provider_names()


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "batches").rglob("*.yaml")))
def test_example_yaml_points_editors_at_an_existing_schema(path: str) -> None:
    first = (REPO / path).read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert ((REPO / path).parent / match.group(1)).resolve().is_file()


def test_wheel_ships_the_schemas(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    builder = WheelBuilder(str(REPO))
    wheel = next(iter(builder.build(directory=str(tmp_path), versions=["standard"])))
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("batch", "persona", "project"):
        assert f"imgbuild/schemas/{name}.schema.json" in names
    assert "imgbuild/data/models.json" in names
    assert "imgbuild/data/init/batches/first-frames.yaml" in names
