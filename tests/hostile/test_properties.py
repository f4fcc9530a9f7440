"""Property tests: mutated manifests, templates and provider answers never reach the user as a
traceback. A mutation is bad input (exit 2, or a warning and exit 0) or a failed asset — never a
bug (exit 70, "unexpected error", a traceback)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from helpers import BATCH, PERSONA, TEMPLATE, run_cli, write_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgbuild.providers.ark import ArkProvider
from imgbuild.providers.base import Call, ProviderError
from imgbuild.providers.fal import FalProvider
from imgbuild.providers.http import HttpApi
from imgbuild.providers.replicate import ReplicateProvider
from imgbuild.resolve import resolve

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
YAML_BITS = st.sampled_from(
    [
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a",
        "<<: ",
        "!!",
        "!tag ",
        "~",
        ".nan",
        "-1",
        "1e999",
        "'",
        '"',
        "\t",
        "\0",
        "|",
        ">",
        "#",
        "?",
        "2024-13-45",
        "\n  ",
        "\\",
        "%",
        "@",
        "`",
        "é",
        "\ufeff",
        "0x1F",
        "null",
    ]
)
JINJA_BITS = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        " for x in ",
        " endfor ",
        " if ",
        " endif ",
        "range(",
        ")",
        "attrs.",
        "persona.",
        "|",
        "center(",
        "999999999",
        "*",
        "**",
        "'x'",
        "include ",
        "'../x'",
        "macro ",
        "__class__",
        ".",
        "(",
        "lipsum",
        " set ",
        " = ",
        "loop.",
        "\xff",
        "\n",
    ]
)


def mutate(text: str, data: st.DataObject, bits: st.SearchStrategy[str]) -> str:
    """`text` with a few random insertions, deletions and replacements of hostile fragments."""
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        span = data.draw(st.integers(0, 12))
        piece = "".join(data.draw(st.lists(bits | st.text(max_size=3), max_size=4)))
        text = text[:at] + piece + text[at + span :]
    return text


def assert_no_bug(root: Path, *command: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(root, *command)
    text = out.getvalue() + err.getvalue()
    assert "Traceback" not in text and "unexpected error" not in text and "this is a bug" not in text, text
    assert code in (0, 1, 2), (code, text)
    return code


@SETTINGS
@given(data=st.data())
def test_mutated_manifests_and_personas_are_input_errors_not_bugs(data: st.DataObject) -> None:
    batch = mutate(BATCH, data, YAML_BITS)
    persona = mutate(PERSONA, data, YAML_BITS) if data.draw(st.booleans()) else PERSONA
    with tempfile.TemporaryDirectory() as folder:
        root = write_project(Path(folder), batches={"covers": batch}, personas={"mia": persona})
        assert_no_bug(root, "plan")


@SETTINGS
@given(data=st.data())
def test_mutated_templates_are_input_errors_not_bugs(data: st.DataObject) -> None:
    template = mutate(TEMPLATE, data, JINJA_BITS)
    with tempfile.TemporaryDirectory() as folder:
        root = write_project(Path(folder), templates={"cover.j2": template, "part.j2": mutate("x", data, JINJA_BITS)})
        assert_no_bug(root, "plan")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
URL = st.sampled_from(["http://127.0.0.1:9/a.png", "data:x", "", "ftp://x", 7, None])


def shaped(data: st.DataObject) -> dict[str, Any]:
    """Something near a real answer of one of the three providers, with fields replaced."""
    item = {"url": data.draw(URL | JSON), "b64_json": data.draw(st.sampled_from(["", "!!", "aGk=", 3]) | JSON)}
    candidates: list[dict[str, Any]] = [
        {"data": data.draw(st.lists(st.just(item) | JSON, max_size=3)), "usage": data.draw(JSON)},
        {
            "id": data.draw(JSON),
            "status": data.draw(st.sampled_from(["succeeded", "failed"]) | JSON),
            "output": data.draw(st.lists(URL, max_size=3) | JSON),
            "metrics": data.draw(JSON),
        },
        {"images": data.draw(st.lists(st.fixed_dictionaries({"url": URL | JSON}) | JSON, max_size=3))},
    ]
    answer = data.draw(st.sampled_from(candidates))
    for key in data.draw(st.lists(st.sampled_from(sorted(answer)), max_size=2)):
        answer.pop(key, None)
    return answer


_PROVIDERS: dict[str, Any] = {}


def providers_and_call() -> tuple[list[Any], Call]:
    if not _PROVIDERS:
        folder = Path(tempfile.mkdtemp())
        root = write_project(folder)
        request = resolve(root, use_cache=False).requests["covers"][0]
        env = {"ARK_API_KEY": "k", "REPLICATE_API_TOKEN": "k", "FAL_KEY": "k"}
        with mock.patch.dict(os.environ, env):
            _PROVIDERS["list"] = [
                ArkProvider(root, {}, HttpApi(provider="ark", key_env="ARK_API_KEY", auth_scheme="Bearer")),
                ReplicateProvider(
                    root, {}, HttpApi(provider="replicate", key_env="REPLICATE_API_TOKEN", auth_scheme="Bearer")
                ),
                FalProvider(root, {}, HttpApi(provider="fal", key_env="FAL_KEY", auth_scheme="Key")),
            ]
        _PROVIDERS["call"] = Call(request, 1, "run-1")
    return _PROVIDERS["list"], _PROVIDERS["call"]


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_any_answer_is_parsed_or_fails_its_asset(data: st.DataObject) -> None:
    providers, call = providers_and_call()
    raw = data.draw(st.builds(lambda: None).flatmap(lambda _: st.just(shaped(data))) | JSON)
    for provider in providers:
        try:
            response = provider.parse(call, raw)
        except ProviderError:
            continue  # the asset fails with its reason: what a bad answer must do
        assert len(response.outputs) <= call.request.max_images
        for output in response.outputs:
            assert output.error is not None or output.data is not None or isinstance(output.url, str)
