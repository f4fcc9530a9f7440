"""Expansion and asset ids: stable, readable, never from list positions."""

from __future__ import annotations

from pathlib import Path

from helpers import BATCH, write_project

from imgbuild.resolve import resolve
from imgbuild.spec.expand import MAX_ID_LENGTH, asset_id, slug


def test_slug_is_readable_and_id_safe() -> None:
    assert slug("Soft morning window light") == "soft-morning-window-light"
    assert slug("  Café / 24h!  ") == "caf-24h"
    assert slug("***") == "x"


def test_ids_use_values_in_attribute_order_not_positions() -> None:
    a = asset_id("covers", "hook", None, {"lighting": "Lamp light", "environment": "Cafe"})
    b = asset_id("covers", "hook", None, {"environment": "Cafe", "lighting": "Lamp light"})
    assert a == b == "covers.hook.cafe.lamp-light"
    assert asset_id("covers", "hook", "neon", {}) == "covers.hook.vt-neon"


def test_long_ids_keep_a_head_and_gain_a_hash() -> None:
    vary = {"environment": "a very long description of a sunlit loft " * 3, "lighting": "x"}
    long_id = asset_id("covers", "hook", None, vary)
    assert len(long_id) == MAX_ID_LENGTH
    assert long_id.startswith("covers.hook.a-very-long-description")
    other = asset_id("covers", "hook", None, {**vary, "lighting": "y"})
    assert other != long_id and other[:-10] == long_id[:-10]


def test_expansion_is_the_product_plus_variant_tests(tmp_path: Path) -> None:
    batch = BATCH + (
        "variant_tests:\n"
        "  - id: neon\n"
        "    reason: not backed, tried on purpose\n"
        "    vary: {lighting: [neon, ultraviolet]}\n"
    )
    write_project(tmp_path, batches={"covers": batch})
    resolution = resolve(tmp_path)
    ids = [r.asset_id for r in resolution.requests["covers"]]
    assert ids == [
        "covers.hook.home-office.morning-light",
        "covers.hook.home-office.lamp-light",
        "covers.hook.cafe.morning-light",
        "covers.hook.cafe.lamp-light",
        "covers.hook.vt-neon.home-office.neon",
        "covers.hook.vt-neon.home-office.ultraviolet",
        "covers.hook.vt-neon.cafe.neon",
        "covers.hook.vt-neon.cafe.ultraviolet",
    ]
    flagged = {r.asset_id: r.variant_test for r in resolution.requests["covers"]}
    assert flagged["covers.hook.vt-neon.cafe.neon"] == "neon"
    assert flagged["covers.hook.cafe.lamp-light"] is None


def test_shot_level_vary_overrides_batch_fixed(tmp_path: Path) -> None:
    batch = BATCH.replace(
        "    editable: [wardrobe, lighting]\n",
        "    editable: [wardrobe, lighting]\n    vary: {wardrobe: [cream sweater, navy blazer]}\n",
    )
    write_project(tmp_path, batches={"covers": batch})
    requests = resolve(tmp_path).requests["covers"]
    assert len(requests) == 8
    assert requests[0].asset_id == "covers.hook.home-office.morning-light.cream-sweater"
    assert dict(requests[0].fixed) == {}
