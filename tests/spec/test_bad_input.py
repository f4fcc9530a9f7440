"""Bad input is reported to people: every problem in every file at once, each as
``file:line path: message``, exit code 2, no traceback, and nothing written under assets/.

Each test writes a real project into tmp_path (the working folder, so messages show paths like
``batches/covers.yaml``) from the helpers' valid BATCH / PERSONA / TEMPLATE with one clear edit.

Line numbers in the expected messages refer to helpers.BATCH:

     1 purpose            8 aspect_ratio       15 shots:
     2 persona            9 output_format      16   - id: hook
     3 source_basis:     10 fixed:             17     need
     4   - path           11   wardrobe         18     template: cover.j2
     5 output            12 vary:              19     candidates: 2
     6 quality           13   environment      20     editable
     7 quality_reason    14   lighting
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import BATCH, PERSONA, TEMPLATE, rejected, run_cli, run_doit, summary, write_project

from imgbuild.models import model_keys

# libyaml (used when present) and pure-Python PyYAML word this one parser error differently.
MAPPING_VALUES = (
    "mapping values are not allowed in this context"
    if hasattr(yaml, "CSafeLoader")
    else "mapping values are not allowed here"
)


def edit(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced (fails loudly if the base text changed)."""
    assert text.count(old) == 1, f"expected exactly one {old!r} in the base text"
    return text.replace(old, new)


def only_problem(root: Path, capsys: pytest.CaptureFixture[str], command: str = "plan") -> str:
    lines = rejected(root, capsys, command)
    assert len(lines) == 2, lines
    return lines[0]


# -- malformed YAML ---------------------------------------------------------------------------


def test_malformed_yaml(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "purpose: covers for tests", "purpose: covers: for tests")})
    assert rejected(tmp_path, capsys) == [f"batches/covers.yaml:1: not valid YAML: {MAPPING_VALUES}", summary(1)]


def test_malformed_yaml_names_where_the_unclosed_bracket_opened(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "lamp light]", "lamp light")})
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:15: not valid YAML: did not find expected ',' or ']'")
    assert "line 14" in line


def test_tab_indentation_is_named(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "  - id: hook", "\t- id: hook")})
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:16: not valid YAML:")
    assert "tab" in line


def test_duplicate_yaml_key(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "output: assets\n", "output: assets\noutput: other\n")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:6 output: duplicate key 'output' (the one on line 5 would be silently lost)",
        summary(1),
    ]


def test_yaml_boolean_where_a_string_is_expected(tmp_path, capsys):
    batch = edit(BATCH, "  lighting: [morning light, lamp light]\n", "")
    batch = edit(batch, "  wardrobe: cream sweater\n", "  wardrobe: cream sweater\n  lighting: off\n")
    write_project(tmp_path, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:12 fixed.lighting: YAML reads off as the boolean false, expected string — quote it: 'off'",
        summary(1),
    ]


def test_not_utf8(tmp_path, capsys):
    write_project(tmp_path)
    (tmp_path / "batches/covers.yaml").write_bytes(edit(BATCH, "covers for", "caf\xe9 covers for").encode("latin-1"))
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:1: not UTF-8 text (invalid continuation byte) — save the file as UTF-8",
        summary(1),
    ]


def test_empty_manifest(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": ""})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:1: empty batch manifest: under-specified, nothing to build",
        summary(1),
    ]


# -- schema violations and under-specified manifests -------------------------------------------


def test_schema_violation(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "candidates: 2", "candidates: two")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:19 shots[0].candidates: 'two' is not of type 'integer'",
        summary(1),
    ]


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        pytest.param(
            "purpose: covers for tests\n",
            "batches/covers.yaml:1: missing required key 'purpose'"
            " — what these images are for (e.g. first-frame covers for the launch videos).",
            id="purpose",
        ),
        pytest.param(
            "source_basis:\n  - path: evidence/mia.md\n",
            "batches/covers.yaml:1: missing required key 'source_basis'"
            " — the evidence files this batch rests on (at least one).",
            id="source_basis",
        ),
        pytest.param(
            "persona: mia\n",
            "batches/covers.yaml:1: missing required key 'persona'"
            " — the persona lock to use: the id of a file in personas/.",
            id="persona",
        ),
        pytest.param(
            "output: assets\n",
            "batches/covers.yaml:1: missing required key 'output'"
            " — project-relative folder that receives this batch's asset records (each asset in <output>/<asset-id>/).",
            id="output",
        ),
    ],
)
@pytest.mark.parametrize("command", ["plan", "build"])
def test_missing_required_key(tmp_path, capsys, removed, expected, command):
    write_project(tmp_path, batches={"covers": edit(BATCH, removed, "")})
    assert rejected(tmp_path, capsys, command) == [expected, summary(1)]


def test_blank_purpose_is_named_as_missing(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "purpose: covers for tests", "purpose:")})
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:1 purpose: ")
    assert "None" not in line
    assert "what these images are for" in line


def test_draft_quality_without_reason_is_rejected(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "quality_reason: tests only need small placeholders\n", "")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:6 quality: 'draft' needs 'quality_reason'"
        " — why a tier below max is right here (cheap draft, throughput test...).",
        summary(1),
    ]


def test_draft_quality_without_reason_points_at_quality(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "quality_reason: tests only need small placeholders\n", "")})
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:6 quality: 'draft'")
    assert "quality_reason" in line


def test_unknown_model(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "output: assets\n", "output: assets\nmodel: seedream-9\n")})
    known = ", ".join(repr(key) for key in model_keys())
    assert rejected(tmp_path, capsys) == [
        f"batches/covers.yaml:6 model: 'seedream-9' is not one of {known}",
        summary(1),
    ]


def test_shot_with_template_and_prompt(tmp_path, capsys):
    write_project(
        tmp_path,
        batches={"covers": edit(BATCH, "    template: cover.j2\n", "    template: cover.j2\n    prompt: hi\n")},
    )
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:16 shots[0]: shot 'hook' has both of 'template' and 'prompt' — give exactly one",
        summary(1),
    ]


def test_shot_with_neither_template_nor_prompt(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "    template: cover.j2\n", "")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:16 shots[0]: shot 'hook' has neither of 'template' and 'prompt' — give exactly one",
        summary(1),
    ]


def test_variant_test_names_unknown_shot(tmp_path, capsys):
    batch = BATCH + (
        "variant_tests:\n"
        "  - id: neon\n"
        "    reason: does neon read as ad-like\n"
        "    shots: [hok]\n"
        "    fixed:\n"
        "      lighting: neon\n"
    )
    write_project(tmp_path, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:24 variant_tests[0].shots[0]: no shot 'hok' in this batch",
        summary(1),
    ]


def test_batch_over_the_asset_cap(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": BATCH}, config="max_assets_per_batch: 3\n")
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:1: expands to 4 assets, over the cap of 3 — set max_assets: 4 in the manifest to allow it",
        summary(1),
    ]


def test_batch_over_its_own_raised_cap(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "output: assets\n", "output: assets\nmax_assets: 3\n")})
    assert rejected(tmp_path, capsys, "build") == [
        "batches/covers.yaml:1: expands to 4 assets, over the cap of 3 — set max_assets: 4 in the manifest to allow it",
        summary(1),
    ]


def test_unknown_provider_in_config(tmp_path, capsys):
    write_project(tmp_path, config="provider: midjourney\n")  # like none of them: no hint, the list
    assert rejected(tmp_path, capsys) == [
        "imgbuild.yaml:1 provider: 'midjourney' is not one of 'ark', 'bfl', 'fal', 'gemini', 'openai', 'preview', "
        "'replicate'",
        summary(1),
    ]


# -- unknown keys warn ------------------------------------------------------------------------


def test_unknown_key_warns_with_suggestion_and_builds(tmp_path):
    write_project(tmp_path, batches={"covers": edit(BATCH, "purpose:", "purpse: covers\npurpose:")})
    result = subprocess.run(
        [sys.executable, "-m", "imgbuild", "build"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: batches/covers.yaml:1 purpse: unknown key, ignored — did you mean 'purpose'?"
    ]
    assert len(list((tmp_path / "assets").glob("*/asset.json"))) == 4


def test_unknown_key_warning_is_the_same_under_doit(tmp_path):
    write_project(tmp_path, batches={"covers": edit(BATCH, "purpose:", "purpse: covers\npurpose:")})
    result = run_doit(tmp_path, "list")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "warning: batches/covers.yaml:1 purpse: unknown key, ignored — did you mean 'purpose'?"
    ]


def test_unknown_config_key_warns(tmp_path, capsys, caplog):
    write_project(tmp_path, config="concurrancy: 2\n")
    code = run_cli(tmp_path, "plan")
    out = capsys.readouterr()
    assert code == 0, out.err
    assert caplog.messages == ["imgbuild.yaml:1 concurrancy: unknown key, ignored — did you mean 'concurrency'?"]


def test_editable_typo_warns(tmp_path, capsys, caplog):
    write_project(tmp_path, batches={"covers": edit(BATCH, "[wardrobe, lighting]", "[wardrobe, lightning]")})
    code = run_cli(tmp_path, "plan")
    capsys.readouterr()
    assert code == 0
    assert caplog.messages == [
        "batches/covers.yaml:20 shots[0].editable[1]: not an attribute of this shot — did you mean 'lighting'?"
    ]


def test_yml_manifest_is_not_silently_ignored(tmp_path, capsys, caplog):
    write_project(tmp_path, batches={})
    (tmp_path / "batches").mkdir()
    (tmp_path / "batches/covers.yml").write_text(BATCH, encoding="utf-8")
    run_cli(tmp_path, "plan")
    capsys.readouterr()
    assert any("batches/covers.yml" in m and ".yaml" in m for m in caplog.messages), caplog.messages


# -- personas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "build"])
def test_unknown_persona(tmp_path, capsys, command):
    write_project(tmp_path, batches={"covers": edit(BATCH, "persona: mia", "persona: zoe")})
    assert rejected(tmp_path, capsys, command) == [
        "batches/covers.yaml:2 persona: no persona lock 'zoe' in personas/ (known: mia)",
        summary(1),
    ]


def test_persona_reference_cannot_be_a_path(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "persona: mia", "persona: ../mia")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:2 persona: '../mia' must be lowercase letters, digits, '-' or '_'"
        " (starting with a letter or digit)",
        summary(1),
    ]


INVALID_PERSONAS = [
    pytest.param(
        edit(PERSONA, "id: mia", "id: zoe"),
        "personas/mia.yaml:1 id: 'zoe' must equal the file name 'mia'",
        id="id-differs-from-file-name",
    ),
    pytest.param(
        edit(PERSONA, "evidence/mia.md", "evidence/gone.md"),
        "personas/mia.yaml:7 evidence[0].path: evidence file 'evidence/gone.md' does not exist",
        id="missing-evidence-file",
    ),
    pytest.param(
        edit(PERSONA, "evidence/mia.md", "../../etc/passwd"),
        "personas/mia.yaml:7 evidence[0].path: '../../etc/passwd' is outside the project folder — use a path inside it",
        id="evidence-escapes-project",
    ),
    pytest.param(
        edit(PERSONA, "evidence:\n  - path: evidence/mia.md\n", ""),
        "personas/mia.yaml:1: missing required key 'evidence'"
        " — the benchmark files that back this persona (at least one).",
        id="no-evidence",
    ),
]


@pytest.mark.parametrize(("persona", "expected"), INVALID_PERSONAS)
def test_invalid_persona(tmp_path, capsys, persona, expected):
    write_project(tmp_path, personas={"mia": persona})
    assert expected in rejected(tmp_path, capsys)


@pytest.mark.parametrize(("persona", "expected"), INVALID_PERSONAS)
def test_invalid_persona_is_not_reported_as_missing(tmp_path, capsys, persona, expected):
    write_project(tmp_path, personas={"mia": persona})
    lines = rejected(tmp_path, capsys)
    assert expected in lines
    assert not [line for line in lines if "no persona lock 'mia'" in line]


# -- the fact rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "build"])
def test_value_not_backed_by_evidence(tmp_path, capsys, command):
    write_project(tmp_path, batches={"covers": edit(BATCH, "lamp light]", "neon]")})
    assert rejected(tmp_path, capsys, command) == [
        "batches/covers.yaml:14 vary.lighting[1]: 'neon' is not backed by persona mia's evidence"
        " — move it under variant_tests (backed: 'morning light', 'lamp light')",
        summary(1),
    ]


def test_attribute_the_persona_has_no_evidence_for(tmp_path, capsys):
    write_project(
        tmp_path,
        batches={"covers": edit(BATCH, "  wardrobe: cream sweater\n", "  wardrobe: cream sweater\n  mood: calm\n")},
    )
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:12 fixed.mood: persona mia's evidence backs no values for 'mood'"
        " — add them to personas/mia.yaml under allowed, or move this under variant_tests",
        summary(1),
    ]


# -- evidence files ---------------------------------------------------------------------------


def test_missing_evidence_file(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "  - path: evidence/mia.md", "  - path: evidence/gone.md")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:4 source_basis[0].path: evidence file 'evidence/gone.md' does not exist",
        summary(1),
    ]


# -- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "build"])
def test_undefined_template_variable(tmp_path, capsys, command):
    write_project(tmp_path, templates={"cover.j2": TEMPLATE + "{{ mood }}\n"})
    assert rejected(tmp_path, capsys, command) == [
        "templates/cover.j2:3: undefined variable: 'mood' is undefined"
        " for asset covers.hook.home-office.morning-light (template of batches/covers.yaml shots[0])",
        summary(1),
    ]


def test_undefined_attribute_names_the_variable(tmp_path, capsys):
    write_project(tmp_path, templates={"cover.j2": edit(TEMPLATE, "attrs.lighting", "attrs.mood")})
    line = only_problem(tmp_path, capsys)
    assert line.startswith("templates/cover.j2:2: undefined variable")
    assert "attrs.mood" in line
    assert "dict object" not in line


def test_jinja_syntax_error(tmp_path, capsys):
    write_project(tmp_path, templates={"cover.j2": edit(TEMPLATE, "{{ attrs.lighting }}", "{{ attrs.lighting }")})
    assert rejected(tmp_path, capsys) == [
        "templates/cover.j2:2: Jinja syntax error: unexpected '}' (template of batches/covers.yaml shots[0])",
        summary(1),
    ]


def test_missing_template(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "template: cover.j2", "template: covr.j2")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:18 shots[0].template: template 'covr.j2' not found in templates/",
        summary(1),
    ]


def test_inline_prompt_undefined_variable_points_into_the_manifest(tmp_path, capsys):
    batch = edit(BATCH, "template: cover.j2", "prompt: 'Photo of {{ persona.name }} in {{ mood }}'")
    write_project(tmp_path, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:18 shots[0].prompt: undefined variable: 'mood' is undefined"
        " for asset covers.hook.home-office.morning-light",
        summary(1),
    ]


def test_block_prompt_undefined_variable_points_at_its_line(tmp_path, capsys):
    batch = edit(BATCH, "template: cover.j2", "prompt: |\n      Photo of {{ persona.name }}\n      in {{ mood }}")
    write_project(tmp_path, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:20 shots[0].prompt: undefined variable: 'mood' is undefined"
        " for asset covers.hook.home-office.morning-light",
        summary(1),
    ]


def test_inline_prompt_syntax_error(tmp_path, capsys):
    batch = edit(BATCH, "template: cover.j2", "prompt: |\n      Photo of {{ persona.name }}\n      in {% if %}")
    write_project(tmp_path, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:20 shots[0].prompt: Jinja syntax error:"
        " Expected an expression, got 'end of statement block'",
        summary(1),
    ]


def test_negative_prompt_undefined_variable(tmp_path, capsys):
    batch = edit(BATCH, "    template: cover.j2\n", "    template: cover.j2\n    negative: 'no {{ blur }}'\n")
    write_project(tmp_path, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:19 shots[0].negative: undefined variable: 'blur' is undefined"
        " for asset covers.hook.home-office.morning-light",
        summary(1),
    ]


@pytest.mark.parametrize(
    ("line", "mentions"),
    [
        pytest.param("{% include 'missing.j2' %}", "'missing.j2'", id="include-missing"),
        pytest.param("{% include '../secret.j2' %}", "'../secret.j2'", id="include-escapes-templates"),
        pytest.param("{{ 1 / 0 }}", "division by zero", id="zero-division"),
    ],
)
def test_template_runtime_error_is_an_input_error(tmp_path, capsys, line, mentions):
    write_project(tmp_path, templates={"cover.j2": TEMPLATE + line + "\n"})
    (tmp_path / "secret.j2").write_text("secret\n", encoding="utf-8")
    message = only_problem(tmp_path, capsys)
    assert message.startswith("templates/cover.j2:3: ")
    assert mentions in message
    assert "(template of batches/covers.yaml shots[0])" in message


# -- ids -------------------------------------------------------------------------------------


def test_duplicate_shot_ids(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": BATCH + "  - id: hook\n    need: again\n    template: cover.j2\n"})
    assert rejected(tmp_path, capsys) == ["batches/covers.yaml:21 shots[1].id: duplicate id 'hook'", summary(1)]


def duplicate_asset_project(root: Path) -> None:
    persona = edit(PERSONA, "[home office, cafe]", "[home office, home-office, cafe]")
    batch = edit(BATCH, "[home office, cafe]", "[home office, home-office]")
    write_project(root, personas={"mia": persona}, batches={"covers": batch})


def test_duplicate_asset_ids(tmp_path, capsys):
    duplicate_asset_project(tmp_path)
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:13 vary.environment[1]: 'home-office' gives the same asset id part 'home-office'"
        " as 'home office' (item 0) — make them distinct",
        summary(1),
    ]


def test_duplicate_vary_value(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "[home office, cafe]", "[home office, cafe, cafe]")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:13 vary.environment[2]: 'cafe' is listed twice (item 1) — make them distinct",
        summary(1),
    ]


def test_duplicate_asset_ids_across_shots(tmp_path, capsys):
    # two shots with the same id would give the same asset ids: the shot id is reported once
    twice = BATCH + "  - id: hook\n    need: again\n    template: cover.j2\n"
    write_project(tmp_path, batches={"covers": twice})
    assert rejected(tmp_path, capsys) == ["batches/covers.yaml:21 shots[1].id: duplicate id 'hook'", summary(1)]


def test_duplicate_asset_ids_point_at_the_clashing_value(tmp_path, capsys):
    duplicate_asset_project(tmp_path)
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:13 vary.environment[1]: ")
    assert "'home office'" in line
    assert "'home-office'" in line


def test_batch_file_name_must_be_an_id(tmp_path, capsys):
    write_project(tmp_path, batches={"My_Covers": BATCH})
    assert rejected(tmp_path, capsys) == [
        "batches/My_Covers.yaml: batch file name 'My_Covers' must be lowercase letters, digits and '-'",
        summary(1),
    ]


# -- ids and paths that would escape the project folder ---------------------------------------


def test_shot_id_cannot_escape(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "id: hook", "id: ../hook")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:16 shots[0].id: '../hook' must be lowercase letters, digits, '-' or '_'"
        " (starting with a letter or digit)",
        summary(1),
    ]


@pytest.mark.parametrize("output", ["../elsewhere", "/tmp/elsewhere"])
def test_output_cannot_escape(tmp_path, capsys, output):
    write_project(tmp_path, batches={"covers": edit(BATCH, "output: assets", f"output: {output}")})
    assert rejected(tmp_path, capsys) == [
        f"batches/covers.yaml:5 output: '{output}' is outside the project folder — use a path inside it",
        summary(1),
    ]
    assert not (tmp_path / output).resolve().exists()


def test_assets_dir_cannot_escape(tmp_path, capsys):
    write_project(tmp_path, config="assets_dir: ../out\n")
    assert rejected(tmp_path, capsys) == [
        "imgbuild.yaml:1 assets_dir: '../out' is outside the project folder — use a path inside it",
        summary(1),
    ]
    assert not (tmp_path.parent / "out").exists()


def test_evidence_path_cannot_escape(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "  - path: evidence/mia.md", "  - path: ../../etc/passwd")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:4 source_basis[0].path: '../../etc/passwd' is outside the project folder"
        " — use a path inside it",
        summary(1),
    ]


def test_evidence_symlink_out_of_the_project_is_named_as_a_link(tmp_path, capsys, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "bench.md"
    outside.write_text("# not ours\n", encoding="utf-8")
    write_project(tmp_path, batches={"covers": edit(BATCH, "  - path: evidence/mia.md", "  - path: evidence/bench.md")})
    (tmp_path / "evidence/bench.md").symlink_to(outside)
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:4 source_basis[0].path: 'evidence/bench.md'")
    assert "link" in line


def test_template_path_cannot_escape_templates(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "template: cover.j2", "template: ../secret.j2")})
    (tmp_path / "secret.j2").write_text("secret\n", encoding="utf-8")
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:18 shots[0].template: '../secret.j2' is outside templates/")


def test_template_path_escaping_is_rejected(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "template: cover.j2", "template: ../secret.j2")})
    (tmp_path / "secret.j2").write_text("secret\n", encoding="utf-8")
    line = only_problem(tmp_path, capsys)
    assert line.startswith("batches/covers.yaml:18 shots[0].template: '../secret.j2' is outside ")


# -- all problems at once ---------------------------------------------------------------------


TEASERS = """\
purpose: teasers for tests
persona: mia
source_basis:
  - path: evidence/mia.md
output: assets
fixed:
  wardrobe: navy blazer
shots:
  - id: wave
    need: a hello
    template: teaser.j2
  - id: nod
    need: a nod
    template: broken.j2
"""


def test_all_problems_in_all_files_at_once(tmp_path, capsys):
    covers = edit(BATCH, "  - path: evidence/mia.md", "  - path: evidence/gone.md")
    covers = edit(covers, "lamp light]", "neon]")
    covers += "  - id: hook\n    need: again\n    template: cover.j2\n"
    write_project(
        tmp_path,
        config="assets_dir: ../out\n",
        batches={
            "covers": covers,
            "teasers": TEASERS,
            "promo": edit(BATCH, "purpose: covers for tests", "purpose: covers: for tests"),
            "extras": edit(BATCH, "output: assets\n", ""),
        },
        personas={"mia": PERSONA, "zoe": edit(PERSONA, "id: mia", "id: zoey")},
        templates={
            "cover.j2": TEMPLATE,
            "teaser.j2": "{{ persona.name }} waves, {{ mood }}\n",
            "broken.j2": "{{ persona.name }} nods {% if %}\n",
        },
    )
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:4 source_basis[0].path: evidence file 'evidence/gone.md' does not exist",
        "batches/covers.yaml:14 vary.lighting[1]: 'neon' is not backed by persona mia's evidence"
        " — move it under variant_tests (backed: 'morning light', 'lamp light')",
        "batches/covers.yaml:21 shots[1].id: duplicate id 'hook'",
        "batches/extras.yaml:1: missing required key 'output'"
        " — project-relative folder that receives this batch's asset records (each asset in <output>/<asset-id>/).",
        f"batches/promo.yaml:1: not valid YAML: {MAPPING_VALUES}",
        "imgbuild.yaml:1 assets_dir: '../out' is outside the project folder — use a path inside it",
        "personas/zoe.yaml:1 id: 'zoey' must equal the file name 'zoe'",
        "templates/broken.j2:1: Jinja syntax error: Expected an expression, got 'end of statement block'"
        " (template of batches/teasers.yaml shots[1])",
        "templates/teaser.j2:1: undefined variable: 'mood' is undefined"
        " for asset teasers.wave (template of batches/teasers.yaml shots[0])",
        summary(9),
    ]


def test_schema_error_does_not_hide_other_problems_in_the_same_file(tmp_path, capsys):
    batch = edit(BATCH, "purpose: covers for tests\n", "")
    batch = edit(batch, "  - path: evidence/mia.md", "  - path: evidence/gone.md")
    batch = edit(batch, "lamp light]", "neon]")
    write_project(tmp_path, batches={"covers": batch})
    lines = rejected(tmp_path, capsys)
    assert len(lines) == 4, lines
    assert lines[0].startswith("batches/covers.yaml:1: missing required key 'purpose'")
    assert lines[1] == "batches/covers.yaml:3 source_basis[0].path: evidence file 'evidence/gone.md' does not exist"
    assert lines[2].startswith("batches/covers.yaml:13 vary.lighting[1]: 'neon' is not backed")


# -- plain doit -------------------------------------------------------------------------------


def test_plain_doit_on_bad_input(tmp_path):
    write_project(tmp_path, batches={"covers": edit(BATCH, "lamp light]", "neon]")})
    result = run_doit(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        "batches/covers.yaml:14 vary.lighting[1]: 'neon' is not backed by persona mia's evidence"
        " — move it under variant_tests (backed: 'morning light', 'lamp light')",
        summary(1),
    ]
    assert not (tmp_path / "assets").exists()


def test_an_invalid_template_value_is_reported_once(tmp_path, capsys):
    write_project(tmp_path, batches={"covers": edit(BATCH, "template: cover.j2", "template: 5")})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:18 shots[0].template: 5 is not of type 'string'",
        summary(1),
    ]


def test_a_variant_test_whose_asset_ids_clash_with_a_shot_value_is_reported_once_per_shot(tmp_path, capsys):
    """A value that slugs to the variant test's id part ('vt neon' and variant test 'neon') gives
    one asset id twice: found only by expanding the batch, and reported once for the shot."""
    persona = edit(PERSONA, "[home office, cafe]", "[home office, cafe, vt neon]")
    batch = edit(BATCH, "environment: [home office, cafe]", "environment: [home office, vt neon]")
    batch += "variant_tests:\n  - id: neon\n    reason: tried on purpose\n    fixed: {environment: cafe}\n"
    write_project(tmp_path, personas={"mia": persona}, batches={"covers": batch})
    assert rejected(tmp_path, capsys) == [
        "batches/covers.yaml:16 shots[0]: duplicate asset id 'covers.hook.vt-neon.morning-light' (shot 'hook' with"
        " lighting='morning light' and shot 'hook' with environment='vt neon', lighting='morning light' of"
        " batches/covers.yaml) — make the values distinct",
        summary(1),
    ]
