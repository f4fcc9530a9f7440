"""Every way a build ends, under plain doit (a subprocess) and `imgbuild build` (in-process): the
exit code, and a summary whose counts add up to the images of the build.

Hosted builds talk to the loopback fakes of tests/fakes/servers.py, their key and base URL in the
environment (which the doit subprocesses inherit)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import BATCH, PERSONA, run_cli, run_doit, write_project

import imgbuild.build.candidate
from imgbuild.records import acquire_build_lock

COUNTS = re.compile(r"(\d+) generated, (\d+) up to date, (\d+) failed, (\d+) not started \(\d+\.\d s\)")
PROGRESS = re.compile(
    r"^\[\s*(\d+)/(\d+)\] \d+ in flight · \d+ images/min · (?:ETA \S+|done) · (\d+) failed", re.MULTILINE
)

# BATCH makes 4 assets × 2 candidates; ONE_EACH makes 4 assets × 1 candidate.
ALL = 8
ONE_EACH = BATCH.replace("candidates: 2", "candidates: 1")

HOSTED = """\
provider: ark
providers:
  ark:
    concurrency: {concurrency}
    retries: {{attempts: 2, base_delay: 0.01, max_delay: 0.05}}
"""


def counts(out: str) -> dict[str, int]:
    """The numbers of the summary line (the last one printed)."""
    found = COUNTS.findall(out)
    assert found, out
    generated, up_to_date, failed, not_started = map(int, found[-1])
    return {"generated": generated, "up to date": up_to_date, "failed": failed, "not started": not_started}


def assert_adds_up(out: str, total: int) -> dict[str, int]:
    numbers = counts(out)
    assert sum(numbers.values()) == total, out
    return numbers


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


def hosted(
    root: Path,
    fake: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
    *,
    batch: str = BATCH,
    persona: str = PERSONA,
    concurrency: int = 2,
    extra: str = "",
) -> Path:
    """A project building with ark against `fake`."""
    write_project(
        root,
        batches={"covers": batch},
        personas={"mia": persona},
        config=HOSTED.format(concurrency=concurrency) + extra,
    )
    monkeypatch.setenv("ARK_API_KEY", fake.keys["ark"])
    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", fake.base_urls["ark"])
    return root


def both(root: Path, capsys: pytest.CaptureFixture[str], fresh: bool = True) -> Iterator[tuple[str, int, str]]:
    """Run the build both ways from the same starting point: ('doit', code, output), then
    ('imgbuild build', code, output). `fresh` removes what the first one made."""
    before = {p for p in root.rglob("*")}
    result = run_doit(root, timeout=60)
    yield "doit", result.returncode, result.stdout + result.stderr
    if fresh:
        for path in sorted(set(root.rglob("*")) - before, reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    capsys.readouterr()
    code = run_cli(root, "build")
    captured = capsys.readouterr()
    yield "imgbuild build", code, captured.out + captured.err


# -- done, then a no-op ------------------------------------------------------------------------------


def test_a_done_build_then_a_no_op(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path)
    for how, code, out in both(tmp_path, capsys):
        assert code == 0, (how, out)
        assert assert_adds_up(out, ALL) == {"generated": ALL, "up to date": 0, "failed": 0, "not started": 0}
    again = run_doit(tmp_path)
    assert again.returncode == 0
    assert f"imgbuild: all {ALL} images up to date, nothing to generate" in again.stdout
    assert run_cli(tmp_path, "build") == 0
    assert f"imgbuild: all {ALL} images up to date, nothing to generate" in capsys.readouterr().out


def test_progress_lines_in_a_log_first_and_last_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Not a terminal: a line when the first image is done and one when the last is (the periodic
    # lines in between come every 10 s, longer than this build), not one per image.
    write_project(tmp_path, batches={"covers": ONE_EACH})
    for how, code, out in both(tmp_path, capsys):
        assert code == 0, (how, out)
        lines = PROGRESS.findall(out)
        assert 2 <= len(lines) <= 3, (how, out)
        assert int(lines[0][0]) >= 1 and lines[-1][:3] == ("4", "4", "0"), (how, out)
        assert "\x1b[" not in out


# -- one failed image -------------------------------------------------------------------------------

FORBIDDEN_PERSONA = PERSONA.replace("[home office, cafe]", "[home office, FORBIDDEN]")
FORBIDDEN_BATCH = ONE_EACH.replace("[home office, cafe]", "[home office, FORBIDDEN]").replace(
    "[morning light, lamp light]\nshots", "[morning light]\nshots"
)


def test_one_rejected_prompt_fails_one_image(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted(tmp_path, fake, monkeypatch, batch=FORBIDDEN_BATCH, persona=FORBIDDEN_PERSONA)
    for how, code, out in both(root, capsys):
        assert code == 1, (how, out)
        assert assert_adds_up(out, 2) == {"generated": 1, "up to date": 0, "failed": 1, "not started": 0}
        assert "FAILED covers:covers.hook.forbidden.morning-light.c1" in out
        assert "Traceback" not in out


# -- refusals: exit 3, STOPPED, the rest not started -------------------------------------------------


def assert_stopped(how: str, code: int, out: str, reason: str) -> None:
    assert code == 3, (how, out)
    assert out.count("imgbuild: STOPPED: ") == 1, (how, out)
    assert reason in out, (how, out)
    numbers = assert_adds_up(out, ALL)
    assert numbers["not started"] > 0 and numbers["generated"] == 0, (how, out)
    assert "Traceback" not in out


def test_a_refused_key_stops_the_build(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted(tmp_path, fake, monkeypatch)
    monkeypatch.setenv("ARK_API_KEY", "wrong-key-123")
    for how, code, out in both(root, capsys):
        assert_stopped(how, code, out, "check ARK_API_KEY")


def test_a_missing_key_stops_the_build(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted(tmp_path, fake, monkeypatch)
    monkeypatch.delenv("ARK_API_KEY")
    for how, code, out in both(root, capsys):
        assert_stopped(how, code, out, "ARK_API_KEY is not set")
        assert counts(out)["not started"] == ALL
    assert fake.requests == []


def test_an_unreachable_host_stops_the_build(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted(tmp_path, fake, monkeypatch)
    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", "http://127.0.0.1:9")
    for how, code, out in both(root, capsys):
        assert_stopped(how, code, out, "cannot connect to http://127.0.0.1:9")


def test_the_budget_stops_the_build(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted(tmp_path, fake, monkeypatch, extra="budget: 0.01\n")
    for how, code, out in both(root, capsys):
        assert_stopped(how, code, out, "over the budget of $0.01")
        assert counts(out)["not started"] == ALL
    assert fake.requests == []


# -- Ctrl-C -------------------------------------------------------------------------------------------


def test_ctrl_c_interrupts_with_130_and_no_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProviders(latency=0.4) as fake:
        root = hosted(tmp_path, fake, monkeypatch)
        build = subprocess.Popen(
            [sys.executable, "-m", "doit"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert build.stdout is not None
        first = build.stdout.readline()  # the first progress line, once an image finished
        assert re.match(r"\[\d/8\] ", first), first
        build.send_signal(signal.SIGINT)
        rest, err = build.communicate(timeout=30)
    out = first + rest + err
    assert build.returncode == 130, out
    assert "Traceback" not in out
    assert "all 0 images up to date" not in out
    assert "imgbuild: INTERRUPTED: " in out
    numbers = assert_adds_up(out, ALL)
    assert numbers["generated"] >= 1 and numbers["not started"] >= 1, out


# -- a second build --------------------------------------------------------------------------------


def test_a_second_build_stops_once_naming_the_first(tmp_path: Path) -> None:
    write_project(tmp_path)
    holder = acquire_build_lock(tmp_path / ".imgbuild")
    try:
        result = run_doit(tmp_path)
    finally:
        holder.close()
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    lines = [line for line in out.splitlines() if "another build is running in this project (pid" in line]
    assert len(lines) == 1, out
    assert f"(pid {os.getpid()})" in lines[0]
    assert assert_adds_up(out, ALL)["not started"] == ALL
    assert not (tmp_path / "assets").exists()


def test_a_second_imgbuild_build_stops_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path)
    holder = acquire_build_lock(tmp_path / ".imgbuild")
    try:
        code = run_cli(tmp_path, "build")
    finally:
        holder.close()
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1, text
    assert len([line for line in text.splitlines() if "another build is running in this project (pid" in line]) == 1
    assert assert_adds_up(text, ALL)["not started"] == ALL


# -- a bug -------------------------------------------------------------------------------------------

BROKEN_PROVIDER = """\
from imgbuild import providers
from imgbuild.providers.preview import PreviewProvider


class Broken(PreviewProvider):
    def generate(self, call, on_job):
        raise RuntimeError("the provider module is broken")


providers.register("preview")(Broken)
"""


def test_a_bug_under_plain_doit_exits_70(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "broken_provider.py").write_text(BROKEN_PROVIDER)
    dodo = tmp_path / "dodo.py"
    dodo.write_text("import broken_provider  # noqa: F401\n" + dodo.read_text())
    result = run_doit(tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 70, out
    assert "this is a bug" in out
    assert "Traceback" not in out
    assert_adds_up(out, ALL)
    crash = tmp_path / ".imgbuild/logs/crash.log"
    assert "the provider module is broken" in crash.read_text()


def test_a_bug_under_imgbuild_build_exits_70(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path)

    def broken(data: bytes, output_format: str) -> tuple[int, int]:
        raise RuntimeError("verify_image is broken")

    monkeypatch.setattr(imgbuild.build.candidate, "verify_image", broken)
    assert run_cli(tmp_path, "build") == 70
    out = capsys.readouterr().out
    assert "this is a bug" in out
    assert "Traceback" not in out
    assert_adds_up(out, ALL)
    assert "verify_image is broken" in (tmp_path / ".imgbuild/logs/crash.log").read_text()


# -- imgbuild ls ---------------------------------------------------------------------------------------

ASSETS = [
    "covers.hook.cafe.lamp-light",
    "covers.hook.cafe.morning-light",
    "covers.hook.home-office.lamp-light",
    "covers.hook.home-office.morning-light",
]


def ls_lines(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    capsys.readouterr()
    assert run_cli(root, "ls", *args) == 0
    return capsys.readouterr().out.splitlines()


def test_ls_lists_states_and_selects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = BATCH.replace("id: hook", "id: end")
    write_project(tmp_path, batches={"covers": BATCH, "extras": other})
    lines = ls_lines(tmp_path, capsys)
    assert sorted(line.split()[0] for line in lines) == sorted(
        ASSETS + [a.replace("covers.hook", "extras.end") for a in ASSETS]
    )
    assert run_cli(tmp_path, "build") == 0
    lines = ls_lines(tmp_path, capsys)
    assert len(lines) == 8
    assert all(line.split()[1:3] == ["current", "unreviewed"] for line in lines), lines

    # an attribute changes: that batch's assets are changed, the other batch's are not
    (tmp_path / "batches/covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    changed = ls_lines(tmp_path, capsys, "--state", "changed")
    assert sorted(line.split()[0] for line in changed) == ASSETS
    assert all(line.split()[1] == "changed" for line in changed)

    listed = json.loads("\n".join(ls_lines(tmp_path, capsys, "--json")))
    assert len(listed["assets"]) == 8
    assert {row["id"] for row in listed["assets"]} >= set(ASSETS)

    assert sorted(line.split()[0] for line in ls_lines(tmp_path, capsys, "covers")) == ASSETS
    assert sorted(line.split()[0] for line in ls_lines(tmp_path, capsys, "covers:*cafe*")) == ASSETS[:2]
    assert ls_lines(tmp_path, capsys, "extras", "--state", "changed") == [
        "imgbuild ls: no asset matches --state changed"
    ]


def test_plan_and_ls_name_the_edit_model_after_an_approve_and_an_editable_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asset = "covers.hook.home-office.morning-light"
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    assert run_cli(tmp_path, "approve", asset, "2", "--pass", "all", "--by", "tester") == 0
    (tmp_path / "batches/covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    capsys.readouterr()
    assert run_cli(tmp_path, "plan") == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("covers:")]
    assert "image-seedream-v5-lite-edit" in line
    rows = {row.split()[0]: row.split() for row in ls_lines(tmp_path, capsys)}
    assert rows[asset][3] == "image-seedream-v5-lite-edit"
    assert rows["covers.hook.cafe.morning-light"][3] == "image-seedream-v5-lite-text"
