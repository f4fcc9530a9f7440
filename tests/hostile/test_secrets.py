"""Class 7: secrets. With keys set, no key, nor its base64, nor the auth header is in any file
under the project (.imgbuild/ included) or in any output — also when a manifest or a template
tries to pull the environment in, and when a server echoes the key back."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import BATCH, TEMPLATE, run_cli, write_project

KEY_ENV = {"ark": "ARK_API_KEY", "replicate": "REPLICATE_API_TOKEN", "fal": "FAL_KEY"}
URL_ENV = {"ark": "IMGBUILD_ARK_BASE_URL", "replicate": "IMGBUILD_REPLICATE_BASE_URL", "fal": "IMGBUILD_FAL_BASE_URL"}
CONFIG = (
    "provider: {provider}\nproviders:\n  {provider}:\n    retries: {{attempts: 2, base_delay: 0.01, max_delay: 0.01}}\n"
)


def needles(key: str) -> list[bytes]:
    return [
        key.encode(),
        base64.b64encode(key.encode()),
        base64.b64encode(f"Bearer {key}".encode()),
        base64.b64encode(f"Key {key}".encode()),
    ]


def leaks(root: Path, key: str, *outputs: str) -> list[str]:
    found = [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles(key))]
    found += [f"output {i}" for i, text in enumerate(outputs) if any(n.decode() in text for n in needles(key))]
    return found


@pytest.fixture
def fake():
    with FakeProviders() as server:
        yield server


@pytest.mark.parametrize("provider", ["ark", "replicate", "fal"])
def test_no_key_in_any_file_or_output_after_builds_and_commands(tmp_path, fake, monkeypatch, capsys, provider):
    key = fake.keys[provider]
    batch = BATCH.replace("output_format: jpeg", "output_format: png")  # fal makes PNG only
    root = write_project(tmp_path / "p", batches={"covers": batch}, config=CONFIG.format(provider=provider))
    monkeypatch.setenv(KEY_ENV[provider], key)
    monkeypatch.setenv(URL_ENV[provider], fake.base_urls[provider])
    monkeypatch.setenv("IMGBUILD_FAL_STORAGE_URL", fake.base_urls["fal_storage"])
    started = time.monotonic()
    outputs = []
    for command in (["build"], ["plan"], ["ls"], ["status"], ["check"], ["explain", "covers.hook.cafe.lamp-light"]):
        run_cli(root, *command)
        out = capsys.readouterr()
        outputs += [out.out, out.err]
    assert time.monotonic() - started < 60
    assert len(list((root / "assets").glob("*/images/candidates/*"))) == 8
    assert leaks(root, key, *outputs) == []


@pytest.mark.parametrize(
    "template",
    [
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ self._TemplateReference__context.environment }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__['os'].environ['ARK_API_KEY'] }}",
        "{{ namespace.__init__.__globals__ }}",
    ],
)
def test_a_template_cannot_reach_the_environment(project, refused, monkeypatch, capsys, template):
    key = "ark-secret-from-the-environment-0000"
    monkeypatch.setenv("ARK_API_KEY", key)
    write_project(project, templates={"cover.j2": template + TEMPLATE})
    text = refused(project, "templates/cover.j2")
    assert key not in text
    assert leaks(project, key) == []


@pytest.mark.parametrize(
    "value",
    ["!!python/object/apply:os.getenv ['ARK_API_KEY']", "!env ARK_API_KEY", "${ARK_API_KEY}"],
)
def test_a_manifest_cannot_pull_the_environment_in(project, refused, monkeypatch, capsys, value):
    key = "ark-secret-from-the-environment-0001"
    monkeypatch.setenv("ARK_API_KEY", key)
    monkeypatch.setenv("IMGBUILD_PROVIDER", "preview")
    (project / "batches/covers.yaml").write_text(
        (project / "batches/covers.yaml").read_text().replace("purpose: covers for tests", f"purpose: {value}")
    )
    if value.startswith("$"):  # plain text: it stays the text, never the value
        assert run_cli(project, "build") == 0
        out = capsys.readouterr()
        assert leaks(project, key, out.out, out.err) == []
        return
    text = refused(project, "batches/covers.yaml:1")
    assert key not in text and leaks(project, key) == []
