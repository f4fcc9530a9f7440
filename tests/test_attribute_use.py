"""Attributes that never reach the request: assets resolving to one request are bad input (the
build would pay twice for one picture); a fixed attribute no template reads is a warning.

Line numbers in the expected messages refer to helpers.BATCH (see tests/spec/test_bad_input.py):
11 fixed.wardrobe, 13 vary.environment, 14 vary.lighting, 16 shots[0], 21 the line after it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers import BATCH, PERSONA, TEMPLATE, copy_examples, rejected, run_cli, run_doit, write_project

from imgbuild.resolve import resolve

NO_LIGHTING = "Photo of {{ persona.name }}, wearing a {{ attrs.wardrobe }}, in a {{ attrs.environment }}.\n"
NO_WARDROBE = "Photo of {{ persona.name }} in a {{ attrs.environment }}, {{ attrs.lighting }}.\n"
# A second shot whose inline prompt uses every attribute but the wardrobe.
DESK = (
    "  - id: desk\n    need: a desk shot\n"
    "    prompt: 'Mia at a desk in a {{ attrs.environment }}, {{ attrs.lighting }}'\n"
)


def edit(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced (fails loudly if the base text changed)."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the base text"
    return text.replace(old, new)


def problems(root: Path, capsys: pytest.CaptureFixture[str], command: str = "plan") -> list[str]:
    """The problem lines of a rejected project (see helpers.rejected), without the summary."""
    return rejected(root, capsys, command)[:-1]


def warnings_of(root: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings a fresh resolve of `root` logs (it must succeed)."""
    with caplog.at_level(logging.WARNING, logger="imgbuild"):
        caplog.clear()
        resolve(root, use_cache=False)
    return list(caplog.messages)


# -- a varied attribute the template ignores --------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "build", "check"])
def test_batch_vary_the_template_ignores(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    write_project(tmp_path, templates={"cover.j2": NO_LIGHTING})
    assert problems(tmp_path, capsys, command) == [
        "batches/covers.yaml:14 vary.lighting: assets covers.hook.home-office.morning-light and"
        " covers.hook.home-office.lamp-light resolve to the same request: template cover.j2 never uses"
        " attrs.lighting — use it in the template or stop varying it"
    ]


def test_it_is_the_same_under_doit(tmp_path: Path) -> None:
    write_project(tmp_path, templates={"cover.j2": NO_LIGHTING})
    result = run_doit(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "batches/covers.yaml:14 vary.lighting: assets covers.hook.home-office.morning-light and" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "assets").exists()


def test_each_attribute_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Four assets, one request: one problem per attribute, each with the pair differing only in it."""
    write_project(tmp_path, templates={"cover.j2": "Photo of {{ persona.name }}, wearing a {{ attrs.wardrobe }}.\n"})
    assert problems(tmp_path, capsys) == [
        "batches/covers.yaml:13 vary.environment: assets covers.hook.home-office.morning-light and"
        " covers.hook.cafe.morning-light resolve to the same request: template cover.j2 never uses"
        " attrs.environment — use it in the template or stop varying it",
        "batches/covers.yaml:14 vary.lighting: assets covers.hook.home-office.morning-light and"
        " covers.hook.home-office.lamp-light resolve to the same request: template cover.j2 never uses"
        " attrs.lighting — use it in the template or stop varying it",
    ]


def test_shot_vary_the_inline_prompt_ignores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = edit(BATCH, "  lighting: [morning light, lamp light]\n", "")
    batch = edit(
        batch,
        "    template: cover.j2\n",
        "    prompt: 'Mia in a {{ attrs.environment }}, {{ attrs.wardrobe }}'\n"
        "    vary:\n      lighting: [morning light, lamp light]\n",
    )
    write_project(tmp_path, batches={"covers": batch})
    assert problems(tmp_path, capsys) == [
        "batches/covers.yaml:19 shots[0].vary.lighting: assets covers.hook.home-office.morning-light and"
        " covers.hook.home-office.lamp-light resolve to the same request: the inline prompt never uses"
        " attrs.lighting — use it in the template or stop varying it"
    ]


def test_variant_test_value_the_template_ignores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A variant test's assets that differ from the shot's only in what the template ignores."""
    batch = (
        BATCH + "variant_tests:\n  - id: moods\n    reason: does a mood read?\n    vary:\n      mood: [calm, tense]\n"
    )
    write_project(tmp_path, batches={"covers": batch})
    assert problems(tmp_path, capsys) == [
        "batches/covers.yaml:25 variant_tests[0].vary.mood: assets covers.hook.home-office.morning-light and"
        " covers.hook.vt-moods.home-office.morning-light.calm resolve to the same request: template cover.j2"
        " never uses attrs.mood — use it in the template or drop it from the variant test"
    ]


def test_identity_sets_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(
        tmp_path,
        batches={"covers": edit(BATCH, "    candidates: 2\n", "    candidates: 2\n    max_images: 3\n")},
        templates={"cover.j2": NO_LIGHTING},
    )
    lines = problems(tmp_path, capsys)
    assert len(lines) == 1
    assert lines[0].startswith("batches/covers.yaml:14 vary.lighting: assets covers.hook.home-office.morning-light")


def test_two_shots_with_the_same_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The template ignores the shot's need: the second shot repeats the first one's requests."""
    batch = BATCH + "  - id: alt\n    need: another frame\n    template: cover.j2\n"
    write_project(tmp_path, batches={"covers": batch})
    assert problems(tmp_path, capsys) == [
        "batches/covers.yaml:21 shots[1]: assets covers.hook.home-office.morning-light and"
        " covers.alt.home-office.morning-light resolve to the same request: same attribute values, same prompt"
        " and settings — make them differ or drop one"
    ]


def test_values_read_but_making_no_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Read in a condition that both values pass: the request hash decides, and the message says how."""
    template = TEMPLATE.replace("{{ attrs.lighting }}", "{% if attrs.lighting %}natural light{% endif %}")
    write_project(tmp_path, templates={"cover.j2": template})
    assert problems(tmp_path, capsys) == [
        "batches/covers.yaml:14 vary.lighting: assets covers.hook.home-office.morning-light and"
        " covers.hook.home-office.lamp-light resolve to the same request: template cover.j2 renders the same"
        " prompt for lighting 'morning light' and 'lamp light' — use it in the template or stop varying it"
    ]


# -- what counts as used -----------------------------------------------------------------------


def test_an_attribute_read_only_in_a_branch_counts_when_it_changes_the_prompt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    template = TEMPLATE.replace(
        "{{ attrs.lighting }}", "{% if attrs.lighting == 'lamp light' %}warm lamp glow{% else %}daylight{% endif %}"
    )
    write_project(tmp_path, templates={"cover.j2": template})
    assert warnings_of(tmp_path, caplog) == []
    assert len({r.request_hash for r in resolve(tmp_path).requests["covers"]}) == 4


@pytest.mark.parametrize(
    ("templates", "negative"),
    [
        (  # only in an included template
            {
                "cover.j2": TEMPLATE.replace("{{ attrs.lighting }}", "{% include 'parts/light.j2' %}"),
                "parts/light.j2": "{{ attrs.lighting | upper }}",
            },
            None,
        ),
        (  # through a macro, by item access
            {
                "cover.j2": "{% macro light(a) %}{{ a['lighting'] }}{% endmacro %}"
                + TEMPLATE.replace("{{ attrs.lighting }}", "{{ light(attrs) }}")
            },
            None,
        ),
        (  # every attribute at once
            {"cover.j2": "Mia: {% for k, v in attrs | dictsort %}{{ k }}={{ v }} {% endfor %}"},
            None,
        ),
        ({"cover.j2": NO_LIGHTING}, "'blurry, {{ attrs.lighting }} overexposed'"),  # only in the negative prompt
    ],
    ids=["include", "macro", "dictsort", "negative"],
)
def test_an_attribute_that_reaches_the_request_counts_as_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, templates: dict[str, str], negative: str | None
) -> None:
    batch = (
        BATCH
        if negative is None
        else edit(BATCH, "    candidates: 2\n", f"    candidates: 2\n    negative: {negative}\n")
    )
    write_project(tmp_path, batches={"covers": batch}, templates=templates)
    assert warnings_of(tmp_path, caplog) == []
    assert len({r.request_hash for r in resolve(tmp_path).requests["covers"]}) == 4


def test_the_branch_decides_per_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Read in one branch only: the assets whose prompts really are equal are the duplicates."""
    template = TEMPLATE.replace(
        "{{ attrs.lighting }}", "{% if attrs.environment == 'cafe' %}{{ attrs.lighting }}{% else %}lamps{% endif %}"
    )
    write_project(tmp_path, templates={"cover.j2": template})
    assert problems(tmp_path, capsys) == [
        "batches/covers.yaml:14 vary.lighting: assets covers.hook.home-office.morning-light and"
        " covers.hook.home-office.lamp-light resolve to the same request: template cover.j2 renders the same"
        " prompt for lighting 'morning light' and 'lamp light' — use it in the template or stop varying it"
    ]


# -- a fixed attribute no template uses --------------------------------------------------------


def test_unused_fixed_attribute_warns_and_builds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    write_project(tmp_path, templates={"cover.j2": NO_WARDROBE})
    expected = (
        "batches/covers.yaml:11 fixed.wardrobe: template cover.j2 never uses attrs.wardrobe, so it reaches"
        " no prompt — use it in the template or remove it"
    )
    with caplog.at_level(logging.WARNING, logger="imgbuild"):
        code = run_cli(tmp_path, "build")
    err = capsys.readouterr().err
    assert code == 0, err
    assert caplog.messages == [expected]
    assert f"warning: {expected}" in err.splitlines()
    assert len(list((tmp_path / "assets").glob("*/asset.json"))) == 4


def test_unused_fixed_attribute_warns_under_doit(tmp_path: Path) -> None:
    write_project(tmp_path, templates={"cover.j2": NO_WARDROBE})
    result = run_doit(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: batches/covers.yaml:11 fixed.wardrobe: template cover.j2 never uses attrs.wardrobe, so it"
        " reaches no prompt — use it in the template or remove it"
    ]


def test_fixed_attribute_used_by_one_shot_only_is_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_project(tmp_path, batches={"covers": BATCH + DESK})
    assert warnings_of(tmp_path, caplog) == []


def test_unused_shot_level_fixed_attribute_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    desk = DESK + "    fixed:\n      framing: close-up\n"
    persona = PERSONA + "  framing: [close-up]\n"
    write_project(tmp_path, batches={"covers": BATCH + desk}, personas={"mia": persona})
    assert warnings_of(tmp_path, caplog) == [
        "batches/covers.yaml:25 shots[1].fixed.framing: the inline prompt never uses attrs.framing, so it reaches no"
        " prompt — use it in the template or remove it"
    ]


def test_the_warning_is_replayed_from_the_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os
    import time

    write_project(tmp_path, templates={"cover.j2": NO_WARDROBE})
    past = time.time() - 60
    for path in tmp_path.rglob("*"):
        os.utime(path, (past, past))
    with caplog.at_level(logging.WARNING, logger="imgbuild"):
        resolve(tmp_path)
        first = list(caplog.messages)
        assert (tmp_path / ".imgbuild/cache/batches/covers.json").is_file()
        caplog.clear()
        resolve(tmp_path)
    assert len(first) == 1 and "fixed.wardrobe" in first[0]
    assert caplog.messages == first


# -- the shipped projects use what they declare -------------------------------------------------


def test_the_examples_and_the_scaffold_use_every_attribute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    examples = copy_examples(tmp_path / "examples")
    assert warnings_of(examples, caplog) == []
    assert run_cli(tmp_path, "init", "scaffold") == 0
    capsys.readouterr()
    assert warnings_of(tmp_path / "scaffold", caplog) == []
