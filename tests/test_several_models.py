"""One shot built on several models: `model` as a list (or `vary: {model: [...]}`), one asset per
model named by its family, priced and planned per model, and side by side in one gallery row."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import PERSONA, hosted_model_project, model_batch, rejected, run_cli, summary, write_project

from imgbuild.resolve import resolve

MODELS = ["image-seedream-v5-lite-text", "image-seedream-v4.5-text", "image-seedream-v5-pro-text"]

SHOT = "  - id: hook\n    need: the same first frame on each model\n    template: cover.j2\n"


def several(models: str) -> str:
    """The batch, with `models` (a `model:` list or a `vary:` block) on lines 6 on."""
    return model_batch(None, SHOT, extra=models + "\n", quality="draft", output_format="jpeg")


AS_LIST = "model: [" + ", ".join(MODELS) + "]"
AS_VARY = "vary:\n  model: [" + ", ".join(MODELS) + "]"
IDS = ["covers.hook.seedream-5-0-lite", "covers.hook.seedream-4-5", "covers.hook.seedream-5-0-pro"]


class GridCells(HTMLParser):
    """The column heads, rows and cards of each grid table of a gallery page."""

    def __init__(self) -> None:
        super().__init__()
        self.cols: list[str] = []
        self.rows = 0
        self.cards: list[str] = []
        self._in_grid = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "table" and "grid" in classes:
            self._in_grid = True
        elif self._in_grid and tag == "th" and "col-head" in classes:
            self.cols.append(found.get("data-value") or "")
        elif self._in_grid and tag == "tr" and "data-row" in found:
            self.rows += 1
        elif self._in_grid and tag == "article":
            self.cards.append(found.get("data-asset") or found.get("id") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_grid = False


def ark_project(root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, models: str) -> Path:
    env = {"ARK_API_KEY": fake.keys["ark"], "IMGBUILD_ARK_BASE_URL": fake.base_urls["ark"]}
    return hosted_model_project(root, monkeypatch, "ark", several(models), env=env)


@pytest.mark.parametrize("models", [AS_LIST, AS_VARY], ids=["list", "vary"])
def test_one_shot_on_three_models_is_built_and_shown_side_by_side(
    models: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProviders() as fake:
        root = ark_project(tmp_path, fake, monkeypatch, models)
        requests = resolve(root, use_cache=False).all_requests()
        assert [r.asset_id for r in requests] == IDS  # the id says which model
        assert [r.model for r in requests] == MODELS
        assert len({r.prompt for r in requests}) == 1  # the same shot on each

        assert run_cli(root, "plan") == 0
        plan = capsys.readouterr().out
        assert (
            f"covers: 3 assets (0 variant tests), 3 candidates; 3 to generate (3 new); {', '.join(sorted(MODELS))}"
            in plan
        )
        assert "image-seedream-v5-pro-text: 1 paid image × " in plan

        assert run_cli(root, "build") == 0
        sent = sorted(r.json["model"] for r in fake.creates("ark"))
        assert sent == ["seedream-4-5-251128", "seedream-5-0-260128", "seedream-5-0-pro-260628"]
        assert "sequential_image_generation" not in next(
            r.json for r in fake.creates("ark") if r.json["model"] == "seedream-5-0-pro-260628"
        )

    assert run_cli(root, "gallery") == 0
    page = GridCells()
    page.feed((root / "gallery" / "covers.html").read_text(encoding="utf-8"))
    assert page.cols == ["Seedream 5.0 lite", "Seedream 4.5", "Seedream 5.0 Pro"]
    assert page.rows == 1  # one row: the three models side by side
    assert len(page.cards) == 3


def test_the_model_list_is_checked_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    twice = "model: [image-seedream-v5-lite-text, image-seedream-v5-lite-edit]"
    write_project(tmp_path / "a", batches={"covers": several(twice)}, personas={"mia": PERSONA})
    assert rejected(tmp_path / "a", capsys) == [
        "a/batches/covers.yaml:6 model[1]: 'image-seedream-v5-lite-edit' and 'image-seedream-v5-lite-text' are both "
        "Seedream 5.0 lite: list a family once",
        summary(1),
    ]
    typo = "vary:\n  model: [image-seedream-v5-pro-txt]"
    write_project(tmp_path / "b", batches={"covers": several(typo)}, personas={"mia": PERSONA})
    assert rejected(tmp_path / "b", capsys) == [
        "b/batches/covers.yaml:7 vary.model[0]: 'image-seedream-v5-pro-txt' is not a model — did you mean "
        "'image-seedream-v5-pro-text'?",
        summary(1),
    ]
