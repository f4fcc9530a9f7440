"""Class 4: bounded work before any call. The expansion is counted, not built; rendering is
bounded in size and time; YAML is bounded and every construction error is file:line, exit 2;
numbers that are not finite or not positive are refused."""

from __future__ import annotations

import pytest
from helpers import BATCH, TEMPLATE, write_project


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1
    return text.replace(old, new)


# -- the expansion: counted before it is built --------------------------------------------------


def wide_vary(keys: int, values: int) -> str:
    lines = [f"  k{k}: [{', '.join(f'v{k}x{v}' for v in range(values))}]" for k in range(keys)]
    return "vary:\n" + "\n".join(lines) + "\n"


def variant_test(keys: int) -> str:
    return "variant_tests:\n  - id: wide\n    reason: a test\n    " + wide_vary(keys, 10).replace("\n  ", "\n      ")


def test_a_product_of_billions_is_refused_at_once(project, refused):
    write_project(project, batches={"covers": BATCH + variant_test(10)})
    refused(project, "batches/covers.yaml:1: expands to 40000000004 assets, over the cap of 1000")


def test_the_cap_counts_every_shot_and_variant_test(project, refused):
    batch = BATCH + "  - id: second\n    need: another\n    template: cover.j2\n" + variant_test(3)
    write_project(project, batches={"covers": batch.replace("purpose:", "max_assets: 8007\npurpose:")})
    refused(project, "expands to 8008 assets, over the cap of 8007")


# -- rendering: size and time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for i in range(100000000) %}x{% endfor %}", "the number 100000000 is over the cap of 100000"),
        ("{% for i in range(50000) %}x{% endfor %}", "range of 50000 items is over the cap of 10000"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "rendering took over 2 s",
        ),
        ("{{ 'x' * 1000000000 }}", "repeating a value 1000000000 times"),
        ("{{ 'ab' | center(1000000000) }}", "the number 1000000000 is over the cap"),
        ("{{ 'ab'.center(1000000000) }}", "the number 1000000000 is over the cap"),
        ("{{ '%999999999s' % 'x' }}", "a format width of a million characters"),
        ("{{ '{:>999999999}'.format('x') }}", "a format width of a million characters"),
        ("{{ 9 ** 99999999 }}", "is over the bounds of a prompt"),
        ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "recurses too deeply"),
        ("{% for i in range(9999) %}{{ 'x' * 99999 }}{% endfor %}", "over 262144 characters"),
        ("{{ cycler.__init__.__globals__.os.environ }}", "refused by the template sandbox"),
        ("{{ lipsum(n=1000000) }}", "the number 1000000 is over the cap"),
    ],
)
def test_templates_that_do_too_much_are_refused(project, refused, template, expected):
    write_project(project, templates={"cover.j2": template + "\n" + TEMPLATE})
    refused(project, "templates/cover.j2", expected)


def test_prompt_over_the_model_cap(project, refused):
    write_project(project, templates={"cover.j2": "{{ 'word ' * 900 }}" + TEMPLATE})
    refused(project, "templates/cover.j2", "characters; image-seedream-v5-lite-text takes at most 4000")


# -- YAML ---------------------------------------------------------------------------------------

LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LAUGHS + BATCH, "batches/covers.yaml:"),  # billion laughs
        ("x: &x\n  - *x\n" + BATCH, "a cycle"),
        ("deep: " + "[" * 200 + "]" * 200 + "\n" + BATCH, "nested over 64 levels deep"),
        (
            edit(BATCH, "purpose: covers for tests", "purpose: !!python/object/apply:os.system ['true']"),
            "batches/covers.yaml:1",
        ),
        (edit(BATCH, "purpose: covers for tests", "purpose: !custom covers"), "batches/covers.yaml:1"),
        (
            edit(BATCH, "purpose: covers for tests", "purpose: 2024-13-45"),
            "batches/covers.yaml:1 purpose: cannot read this value",
        ),
        (
            edit(BATCH, "fixed:\n  wardrobe: cream sweater", "fixed:\n  <<: 3\n  wardrobe: cream sweater"),
            "batches/covers.yaml:11 fixed: cannot merge here",
        ),
        (edit(BATCH, "purpose: covers for tests", "purpose: covers\0for tests"), "batches/covers.yaml:1: a NUL byte"),
        (edit(BATCH, "fixed:", "? [a, b]\n: 1\nfixed:"), "a mapping key must be a plain value"),
    ],
)
def test_yaml_that_cannot_be_read_is_file_line_exit_2(project, refused, text, expected):
    (project / "batches/covers.yaml").write_text(text)
    refused(project, expected)


def test_billion_laughs_names_the_bound(project, refused):
    (project / "batches/covers.yaml").write_text(LAUGHS + BATCH)
    refused(project, "over 200000 values (aliases expanding too far?)")


def test_manifest_not_utf8(project, refused):
    (project / "batches/covers.yaml").write_bytes(BATCH.encode().replace(b"covers for tests", b"caf\xe9"))
    refused(project, "batches/covers.yaml:1: not UTF-8 text")


# -- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("budget: .nan\n", "imgbuild.yaml:1 budget: '.nan' is not a finite number"),
        ("budget: .inf\n", "imgbuild.yaml:1 budget: '.inf' is not a finite number"),
        ("budget: -5\n", "imgbuild.yaml:1 budget"),
        ("concurrency: -1\n", "imgbuild.yaml:1 concurrency"),
        ("max_assets_per_batch: 0\n", "imgbuild.yaml:1 max_assets_per_batch"),
        ("providers:\n  ark:\n    deadline_seconds: -.inf\n", "imgbuild.yaml:3 providers.ark.deadline_seconds"),
    ],
)
def test_numbers_that_are_not_finite_or_positive(project, refused, config, expected):
    write_project(project, config=config)
    refused(project, expected)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("candidates: 2", "candidates: -2", "batches/covers.yaml:19 shots[0].candidates"),
        (
            "candidates: 2",
            "candidates: .nan",
            "batches/covers.yaml:19 shots[0].candidates: '.nan' is not a finite number",
        ),
        ("candidates: 2", "candidates: 1e400", "batches/covers.yaml:19 shots[0].candidates"),
    ],
)
def test_counts_that_are_not_positive_integers(project, refused, old, new, expected):
    write_project(project, batches={"covers": edit(BATCH, old, new)})
    refused(project, expected)
