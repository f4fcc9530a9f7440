"""Class 7: secrets. With keys set, no key, nor its base64, nor the auth header is in any file
under the project (.imgbuild/ included) or in any output — also when a manifest or a template
tries to pull the environment in, and when a server echoes the key back."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from fakes.loopback import LoopbackJSON
from fakes.servers import FakeProviders
from helpers import BATCH, TEMPLATE, run_cli, write_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgbuild.providers.base import ProviderError
from imgbuild.providers.http import HttpApi, same_site

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


class _Spy(LoopbackJSON):
    """Answers every call 200 {} and keeps the headers of each: did the key reach it?"""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str]] = []

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, object]:
        self.seen.append(headers)
        return 200, {}


def test_a_url_an_answer_names_off_the_api_site_is_never_sent_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's status, polling or result URL comes from the provider's answer: a tampered answer
    naming another host (fal's status_url, Replicate's urls.get) must not get the key."""
    monkeypatch.setenv("FAL_KEY", "fal-secret-key")
    with _Spy() as spy:
        api = HttpApi(provider="fal", key_env="FAL_KEY", auth_scheme="Key")
        api.url_sources[spy.url] = "the test's base URL"
        try:
            assert api.call_json("GET", f"{spy.url}/status", log=[], what="poll") == {}
            elsewhere = spy.url.replace("127.0.0.1", "localhost")  # the same server, another origin
            with pytest.raises(ProviderError, match=r"not its API's site.*the key is not sent there"):
                api.call_json("GET", f"{elsewhere}/status", log=[], what="poll")
        finally:
            api.close()
    assert [h.get("authorization") for h in spy.seen] == ["Key fal-secret-key"]  # the first call only


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.us1.bfl.ai/v1/get_result?id=1", True),  # BFL's regional answer to api.bfl.ai
        ("https://queue.fal.run/fal-ai/x/requests/1/status", True),
        ("http://api.us1.bfl.ai/v1/get_result?id=1", False),  # off the origin, and not https
        ("https://bfl.ai.example.com/v1/get_result", False),
        ("https://evil.example/status", False),
        ("http://127.0.0.2:8080/status", False),  # an IP has no domain: its origin only
    ],
)
def test_the_site_a_keyed_call_may_reach(url: str, allowed: bool) -> None:
    origins = ["https://api.bfl.ai", "https://queue.fal.run", "http://127.0.0.1:8080"]
    assert same_site(url, origins) is allowed


_KEYS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), min_size=8, max_size=24
)


def _records(secret: str) -> st.SearchStrategy[object]:
    """Exchange records as `scrub` gets them: JSON-like values, some strings holding the secret."""
    texts = st.one_of(
        st.text(max_size=12), st.tuples(st.text(max_size=6), st.text(max_size=6)).map(lambda t: f"{t[0]}{secret}{t[1]}")
    )
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts, st.binary(max_size=4))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.tuples(inner),
            st.dictionaries(st.one_of(texts, st.integers()), inner, max_size=4),
        ),
        max_leaves=12,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=_KEYS, data=st.data())
def test_scrub_finds_a_secret_wherever_the_walk_would(
    monkeypatch: pytest.MonkeyPatch, key: str, data: st.DataObject
) -> None:
    """scrub looks for the secrets in a record's JSON text first and walks only a record that has
    one: whatever the key (quotes, backslashes, control characters, any Unicode) and the record,
    it gives what walking every string gives."""
    monkeypatch.setenv("ARK_API_KEY", key)
    api = HttpApi(provider="ark", key_env="ARK_API_KEY", auth_scheme="Bearer")
    secret = data.draw(st.sampled_from(sorted(api._secrets)))
    record = data.draw(_records(secret))
    assert api.scrub(record) == api._scrub(record)
