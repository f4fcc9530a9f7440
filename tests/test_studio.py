"""`imgbuild review`, the review studio: keys pressed in a real headless Chromium (Selenium with
Debian's chromium-driver, installed by tests/setup.sh), refusals over real loopback HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import FIRST_SCREEN_IMAGES, chromium, press, wait_for
from helpers import BATCH, run_cli, snapshot, write_project

from imgbuild.review import CHECKLIST
from imgbuild.studio import TOKEN_HEADER, StudioServer, create_app

FIRST, SECOND, THIRD, FOURTH = (
    "covers.hook.home-office.morning-light",
    "covers.hook.home-office.lamp-light",
    "covers.hook.cafe.morning-light",
    "covers.hook.cafe.lamp-light",
)


def asset_record(root: Path, asset: str) -> dict[str, Any]:
    return json.loads((root / "assets" / asset / "asset.json").read_text(encoding="utf-8"))


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A built project: 4 assets, 2 candidates each, none reviewed."""
    root = tmp_path / "project"
    write_project(root, batches={"covers": BATCH})
    assert run_cli(root, "build") == 0
    capsys.readouterr()
    return root


@pytest.fixture
def studio(project: Path) -> Iterator[StudioServer]:
    server = StudioServer(create_app(project, by="ana")).start()
    yield server
    server.stop()


# -- the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def pane_asset(driver: Any) -> str:
    return str(driver.execute_script("return document.querySelector('#asset').dataset.asset"))


def status_line(driver: Any) -> str:
    return str(driver.execute_script("return document.getElementById('status').textContent"))


def test_keys_approve_with_an_override_and_reject(
    browser: Any, studio: StudioServer, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(studio.url)
    wait_for(browser, "document.body.dataset.ready", "the page's key handler")
    # The queue starts at the first asset still to review; the shortcuts are on the page.
    assert pane_asset(browser) == FIRST
    keys = browser.find_element("id", "keys").text
    for shown in ("j/k next / previous asset", "z zoom", "c compare", "a approve", "r reject", "u undo"):
        assert shown.replace(" ", "") in keys.replace(" ", ""), shown
    # Every image on the first screen has loaded.
    assert wait_for(
        browser,
        f"{FIRST_SCREEN_IMAGES}.every(i => i.complete && i.naturalWidth > 0)",
        "the first screen's images",
    )

    # Next asset, candidate 2, approve: repeatability fails, override, a note, Enter.
    press(browser, "j")
    wait_for(browser, f"document.querySelector('#asset').dataset.asset === '{SECOND}'", "the second asset")
    press(browser, "2")
    assert "picked" in browser.find_element("css selector", 'figure.big[data-candidate="2"]').get_attribute("class")
    press(browser, "a")
    assert browser.find_element("id", "decide").is_displayed()
    assert browser.find_element("id", "decide-candidate").text == "2"
    press(browser, "3o")
    press(browser, "n")
    press(browser, "identity drifts between videos; fine for the launch test" + Keys.ENTER)
    wait_for(browser, "document.getElementById('status').textContent.startsWith('approved')", "the approval")
    assert status_line(browser) == f"approved {SECOND} candidate 2 (by ana)"
    card = browser.find_element("css selector", f'#queue article[data-asset="{SECOND}"]')
    assert card.get_attribute("data-state") == "approved"

    # Next asset, candidate 1, reject with realism failed and a note.
    press(browser, "j")
    wait_for(browser, f"document.querySelector('#asset').dataset.asset === '{THIRD}'", "the third asset")
    press(browser, "1r1n")
    press(browser, "plastic skin under the lamp" + Keys.ENTER)
    wait_for(browser, "document.getElementById('status').textContent.startsWith('rejected')", "the rejection")
    browser.save_screenshot(str(tmp_path / "studio.png"))
    assert (tmp_path / "studio.png").stat().st_size > 10_000

    # The records say exactly that.
    approved = asset_record(project, SECOND)
    approval = approved["approval"]
    assert (approval["candidate"], approval["by"], approval["override"]) == (2, "ana", True)
    assert approval["note"] == "identity drifts between videos; fine for the launch test"
    assert {i: c["result"] for i, c in approval["checklist"].items()} == {
        item: "fail" if item == "repeatability" else "pass" for item in CHECKLIST
    }
    assert (project / "assets" / SECOND / approval["file"]).is_file()
    rejected = asset_record(project, THIRD)
    assert rejected["approval"] is None
    (review,) = rejected["reviews"]
    assert (review["decision"], review["candidate"], review["note"]) == ("reject", 1, "plastic skin under the lamp")
    assert review["checklist"] == {"realism": {"result": "fail", "note": None}}
    assert [asset_record(project, a)["reviews"] for a in (FIRST, FOURTH)] == [[], []]

    # ... and so do `imgbuild status` and `imgbuild check --approved`.
    capsys.readouterr()
    assert run_cli(project, "status") == 0
    assert capsys.readouterr().out == (
        "covers: 4/4 current, 1 approved, 1 rejected, 2 unreviewed; image-seedream-v5-lite-text\n"
    )
    assert run_cli(project, "check", "--approved") == 1
    assert capsys.readouterr().out.splitlines() == [
        *(
            f"unapproved: assets/{a}: no approved image (run imgbuild approve {a} <candidate>)"
            for a in (FIRST, THIRD, FOURTH)
        ),
        "imgbuild check: 3 of 4 assets have no current approved image (run `imgbuild approve <asset> <candidate>`)",
    ]

    # A decision made in the CLI while the page is open shows on the next view.
    assert run_cli(project, "approve", FOURTH, "1", "--pass", "all", "--by", "bo") == 0
    press(browser, "j")
    wait_for(browser, f"document.querySelector('#asset').dataset.asset === '{FOURTH}'", "the fourth asset")
    card = browser.find_element("css selector", f'#queue article[data-asset="{FOURTH}"]')
    assert card.get_attribute("data-state") == "approved"
    assert "#1 approved by bo" in browser.find_element("css selector", "#asset .review .label").text

    # Undo takes back this session's last decision (the rejection), and says so.
    press(browser, "u")
    wait_for(browser, "document.getElementById('status').textContent.startsWith('undid')", "the undo")
    assert status_line(browser) == f"undid the reject of {THIRD} candidate 1"
    assert asset_record(project, THIRD)["reviews"] == []
    history = json.loads((project / "assets" / THIRD / "index.json").read_text(encoding="utf-8"))["history"]
    assert [e["event"] for e in history][-2:] == ["rejected", "undone"]

    # Reloading resumes at the first asset still to review.
    browser.get(studio.url)
    wait_for(browser, "document.body.dataset.ready", "the reloaded page")
    assert pane_asset(browser) == FIRST
    order = [c.get_attribute("data-asset") for c in browser.find_elements("css selector", "#queue article")]
    assert order == [FIRST, THIRD, SECOND, FOURTH]  # to review first, then approved


def test_keys_for_zoom_compare_and_a_refused_approval(browser: Any, studio: StudioServer, project: Path) -> None:
    browser.get(studio.url)
    wait_for(browser, "document.body.dataset.ready", "the page's key handler")
    press(browser, "1z")
    wait_for(browser, "!document.getElementById('overlay').hidden", "the zoom")
    # The original, not the 1,024-pixel view of the pane: 2048 pixels wide.
    assert wait_for(browser, "document.querySelector('#overlay img').naturalWidth", "the full image") == 2048
    press(browser, "\ue00c")  # Escape
    press(browser, "2c")
    wait_for(browser, "document.querySelectorAll('#overlay figure').length === 2", "the comparison")
    captions = [f.text for f in browser.find_elements("css selector", "#overlay figcaption")]
    assert [c.split(" ")[0] for c in captions] == ["#1", "#2"]
    press(browser, "\ue00c")

    # A failed item without override is refused with the CLI's message, and nothing is written.
    before = snapshot(project / "assets")
    press(browser, "a2")
    press(browser, "\ue007")  # Enter
    wait_for(browser, "document.getElementById('decide-error').textContent", "the refusal")
    assert browser.find_element("id", "decide-error").text == (
        "checklist item benchmark-fit failed: approving anyway needs --override and a --note saying why"
    )
    assert snapshot(project / "assets") == before


# -- refusals over HTTP ------------------------------------------------------------------------------------


def test_changes_need_the_token_and_files_must_be_known(studio: StudioServer, project: Path, tmp_path: Path) -> None:
    token = create_token(studio)
    decision = {
        "decision": "approve",
        "asset": FIRST,
        "candidate": "1",
        "checklist": {item: {"result": "pass"} for item in CHECKLIST},
    }
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser", encoding="utf-8")
    with httpx.Client(base_url=studio.url, timeout=10) as client:
        page = client.get("/").text
        before = snapshot(project)
        refused = [
            client.post("/api/decide", json=decision),
            client.post("/api/decide", json=decision, headers={TOKEN_HEADER: "guess"}),
            client.post("/api/decide", json=decision, headers={TOKEN_HEADER: token, "Origin": "http://evil.test"}),
            client.post(
                "/api/decide",
                content=json.dumps(decision),
                headers={TOKEN_HEADER: token, "Content-Type": "text/plain"},
            ),
            client.post("/api/undo", json={}),
            client.post("/api/decide", json=decision, headers={TOKEN_HEADER: token, "Host": "evil.test"}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 415, 403, 400]
        assert "missing or wrong X-Imgbuild-Token" in refused[0].json()["error"]
        assert snapshot(project) == before

        # Files: only the exact paths the pages linked; nothing by `..`, absolute path or link.
        thumb = page.split('src="/files/', 1)[1].split('"', 1)[0]
        assert client.get(f"/files/{thumb}").headers["content-type"] == "image/jpeg"
        asset_json = f"assets/{FIRST}/asset.json"
        client.get(f"/asset/{FIRST}")
        assert client.get(f"/files/{asset_json}").json()["asset_id"] == FIRST
        for path in (
            "imgbuild.yaml",
            f"assets/{FIRST}/../../imgbuild.yaml",
            f"assets/{FIRST}/%2e%2e/%2e%2e/imgbuild.yaml",
            str(secret),
            "/" + str(secret),
            "%2F" + str(secret).lstrip("/"),
        ):
            answer = client.get(f"/files/{path}")
            assert answer.status_code == 404, path
            assert "not for the browser" not in answer.text
        # A known image replaced by a link to a file outside the project is refused too.
        image = project / thumb
        image.unlink()
        image.symlink_to(secret)
        answer = client.get(f"/files/{thumb}")
        assert answer.status_code == 403 and "not for the browser" not in answer.text

        # With the token, the decision goes through the CLI's code and its rules.
        bad = client.post("/api/decide", json={**decision, "candidate": "7"}, headers={TOKEN_HEADER: token})
        assert bad.status_code == 409
        assert bad.json()["error"] == f"asset {FIRST} has no candidate 7 for its current request (candidates: 1, 2)"
        ok = client.post("/api/decide", json=decision, headers={TOKEN_HEADER: token})
        assert ok.status_code == 200, ok.text
        assert ok.json()["message"].startswith(f"approved {FIRST} candidate 1 (by ana)")
    assert asset_record(project, FIRST)["approval"]["candidate"] == 1


def create_token(studio: StudioServer) -> str:
    return str(studio.app.state.session.token)


def test_the_command_prints_its_address_and_refuses_an_unknown_batch(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "review", "posters", "--no-open") == 2
    assert capsys.readouterr().err == "imgbuild: error: unknown batch 'posters' (batches: covers)\n"


# -- what the pages show --------------------------------------------------------------------------------

VARIANT = """\
variant_tests:
  - id: neon
    reason: does a neon night still read as Mia?
    fixed: {lighting: pink neon glow}
"""


def queue_of(html: str) -> list[tuple[str, str]]:
    """(asset, state) of each queue card, in order."""
    cards = html.split('<article class="card qcard')[1:]
    return [
        (c.split('data-asset="', 1)[1].split('"', 1)[0], c.split('data-state="', 1)[1].split('"', 1)[0]) for c in cards
    ]


def pane_of(html: str) -> str:
    return html.split('<section id="asset"', 1)[1].split("</section>", 1)[0]


def test_the_queue_puts_what_needs_review_first_and_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p", batches={"covers": BATCH + VARIANT})
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", FIRST, "1", "--pass", "all", "--by", "ana") == 0
    assert run_cli(root, "reject", SECOND, "2", "--fail", "realism", "--by", "ana") == 0
    capsys.readouterr()
    neon = ("covers.hook.vt-neon.home-office", "covers.hook.vt-neon.cafe")
    server = StudioServer(create_app(root, by="ana")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            page = client.get("/").text
            assert queue_of(page) == [
                (THIRD, "unreviewed"),
                (FOURTH, "unreviewed"),
                (neon[0], "unreviewed"),
                (neon[1], "unreviewed"),
                (SECOND, "rejected"),
                (FIRST, "approved"),
            ]
            assert 'data-asset="' + THIRD + '"' in pane_of(page)  # resumes at the first still to review
            states = {
                state: [a for a, _ in queue_of(client.get("/", params={"state": state}).text)]
                for state in ("approved", "rejected", "variant-test", "unreviewed", "stale", "interrupted")
            }
            assert states == {
                "approved": [FIRST],
                "rejected": [SECOND],
                "variant-test": list(neon),
                "unreviewed": [THIRD, FOURTH, *neon],
                "stale": [],
                "interrupted": [],
            }
            by_vary = client.get("/", params=[("vary", "environment=cafe"), ("vary", "lighting=lamp light")]).text
            assert [a for a, _ in queue_of(by_vary)] == [FOURTH]
            assert [a for a, _ in queue_of(client.get("/", params={"shot": "hook", "batch": "covers"}).text)] == [
                a for a, _ in queue_of(page)
            ]
            assert "no asset matches these filters" in client.get("/", params={"shot": "nope"}).text
            # Asked for by id, an asset is shown whatever its place in the queue.
            assert 'data-asset="' + FIRST + '"' in pane_of(client.get("/", params={"asset": FIRST}).text)
    finally:
        server.stop()


def test_an_edit_is_shown_beside_the_approved_image_it_is_made_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_project(tmp_path / "p")
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", FIRST, "2", "--pass", "all", "--by", "ana") == 0
    approved = asset_record(root, FIRST)["approval"]
    (root / "batches" / "covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    assert run_cli(root, "build") == 0
    capsys.readouterr()
    server = StudioServer(create_app(root, by="ana")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            pane = pane_of(client.get(f"/asset/{FIRST}").text)
            reference = pane.split('<figure class="big ref" data-role="approved"', 1)[1].split("</figure>", 1)[0]
            assert f"assets/{FIRST}/{approved['file']}" in reference
            assert "approved image this edit is made from" in reference
            src = reference.split('src="', 1)[1].split('"', 1)[0]
            assert client.get(src).headers["content-type"] == "image/jpeg"
            assert "an edit of approved candidate 2: wardrobe cream sweater → navy blazer" in pane
            changes = pane.split('<ul class="changes">', 1)[1].split("</ul>", 1)[0]
            assert "fixed.wardrobe: &#39;cream sweater&#39; → &#39;navy blazer&#39;" in changes
            assert '<span class="badge stale">stale approval</span> candidate 2' in pane
            assert "USD at list prices for its 2 images" in pane
            assert [c for c in ("asset.json", "index.json") if f"/files/assets/{FIRST}/{c}" in pane] == [
                "asset.json",
                "index.json",
            ]
    finally:
        server.stop()


def test_decisions_at_once_from_the_studio_and_the_cli_all_land_whole(
    studio: StudioServer, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four decisions on one asset at the same moment, two from the page and two from the CLI's
    code in other threads: each waits its turn; asset.json and index.json hold all four."""
    import threading

    from imgbuild.decisions import decide

    token = create_token(studio)
    passed = {item: {"result": "pass"} for item in CHECKLIST}
    start = threading.Barrier(4)
    answers: list[str] = []

    def from_page(candidate: str) -> None:
        with httpx.Client(base_url=studio.url, timeout=30) as client:
            body = {"decision": "approve", "asset": FIRST, "candidate": candidate, "checklist": passed}
            start.wait()
            answer = client.post("/api/decide", json=body, headers={TOKEN_HEADER: token})
            answers.append(answer.json().get("message") or answer.text)

    def from_cli(candidate: str) -> None:
        start.wait()
        done = decide(
            project, "reject", FIRST, candidate, passed=[], failed=["ad-drift"], note=None, by="bo", override=False
        )
        answers.append(done.lines[0])

    threads = [
        threading.Thread(target=from_page, args=("1",)),
        threading.Thread(target=from_page, args=("2",)),
        threading.Thread(target=from_cli, args=("1",)),
        threading.Thread(target=from_cli, args=("2",)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.split(" (by")[0] for a in answers) == [
        f"approved {FIRST} candidate 1",
        f"approved {FIRST} candidate 2",
        f"rejected {FIRST} candidate 1",
        f"rejected {FIRST} candidate 2",
    ]
    record = asset_record(project, FIRST)
    assert sorted((r["decision"], r["candidate"]) for r in record["reviews"]) == [
        ("approve", 1),
        ("approve", 2),
        ("reject", 1),
        ("reject", 2),
    ]
    history = json.loads((project / "assets" / FIRST / "index.json").read_text(encoding="utf-8"))["history"]
    assert sorted(e["event"] for e in history if e["kind"] == "review") == [
        "approved",
        "approved",
        "rejected",
        "rejected",
    ]
    capsys.readouterr()
    assert run_cli(project, "check") == 0


def test_keys_pick_an_image_of_an_identity_set(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`1` `.` `3` picks image 3 of set 1, and approving it records image 3."""
    from selenium.webdriver.common.keys import Keys

    root = write_project(
        tmp_path / "p",
        batches={"covers": BATCH.replace("    candidates: 2\n", "    candidates: 1\n    max_images: 3\n")},
    )
    assert run_cli(root, "build") == 0
    capsys.readouterr()
    server = StudioServer(create_app(root, by="ana")).start()
    try:
        browser.get(server.url)
        wait_for(browser, "document.body.dataset.ready", "the page's key handler")
        labels = [f.get_attribute("data-candidate") for f in browser.find_elements("css selector", "#asset figure.big")]
        assert labels == ["1.1", "1.2", "1.3"]
        press(browser, "1.3")
        picked = browser.find_elements("css selector", "#asset figure.big.picked")
        assert [f.get_attribute("data-candidate") for f in picked] == ["1.3"]
        press(browser, "a" + Keys.ENTER)
        wait_for(browser, "document.getElementById('status').textContent.startsWith('approved')", "the approval")
        assert status_line(browser) == f"approved {FIRST} candidate 1.3 (by ana)"
    finally:
        server.stop()
    approval = asset_record(root, FIRST)["approval"]
    assert (approval["candidate"], approval["image"]) == (1, 3)


def test_imgbuild_review_serves_on_loopback_until_stopped(project: Path) -> None:
    """The real command in a child process: it prints its 127.0.0.1 address, serves the page,
    and stops on SIGINT (Ctrl-C) with exit code 0."""
    import signal
    import subprocess
    import sys

    from helpers import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-m", "imgbuild", "-C", str(project), "review", "--no-open", "--by", "ana"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("imgbuild review: http://127.0.0.1:") and line.endswith("/ (Ctrl-C to stop)\n"), line
        url = line.split()[2]
        page = httpx.get(url, timeout=20)
        assert page.status_code == 200 and 'reviewing as <b id="reviewer">ana</b>' in page.text
    finally:
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    assert (child.returncode, out) == (0, "imgbuild review: stopped\n"), err


def test_a_manifest_broken_while_the_page_is_open_is_reported_on_the_page(studio: StudioServer, project: Path) -> None:
    manifest = project / "batches" / "covers.yaml"
    good = manifest.read_text(encoding="utf-8")
    with httpx.Client(base_url=studio.url, timeout=10) as client:
        assert client.get("/").status_code == 200
        manifest.write_text(good + "shots: [\n", encoding="utf-8")
        broken = client.get("/")
        assert broken.status_code == 500
        assert broken.text.startswith("imgbuild: error: ") and "batches/covers.yaml" in broken.text
        manifest.write_text(good, encoding="utf-8")
        assert client.get("/").status_code == 200
