"""`imgbuild gallery`: the static contact sheet, checked as HTML and in a real headless Chromium."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from browser import FIRST_SCREEN_IMAGES
from browser import chromium as webdriver_on_chromium
from helpers import BATCH, TEMPLATE, run_cli, write_project

from imgbuild.gallery import CHECKLIST_ITEMS, Axes, batch_axes, build_page, choose_axes
from imgbuild.resolve import resolve

VARIANT = """\
variant_tests:
  - id: neon
    reason: does a neon night still read as Mia?
    fixed: {lighting: pink neon glow}
"""

APPROVED_ASSET = "covers.hook.cafe.lamp-light"
STALE_ASSET = "covers.hook.home-office.morning-light"

SETUP_HINT = "run the README's test set-up command (bash tests/setup.sh installs chromium)"


# -- a tiny DOM, enough to query what Chromium dumps ------------------------------------------------


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    content: list[Node | str] = dataclasses.field(default_factory=list, repr=False)  # children and text, in order
    parent: Node | None = dataclasses.field(default=None, repr=False)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.content:
            if isinstance(child, Node):
                yield from child.iter()

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants (and self) by tag, class and exact attribute values (``data_row`` → ``data-row``)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k) == v for k, v in wanted.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one <{tag} class={cls} {attrs}>, found {len(found)}"
        return found[0]

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    @property
    def text(self) -> str:
        """The text content, white space folded."""
        return " ".join("".join(self._texts()).split())

    def _texts(self) -> Iterator[str]:
        for child in self.content:
            if isinstance(child, Node):
                yield from child._texts()
            else:
                yield child


class _TreeBuilder(HTMLParser):
    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].content.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


# -- a built project with review records --------------------------------------------------------------


def read_asset(root: Path, asset_id: str) -> dict[str, Any]:
    return json.loads((root / "assets" / asset_id / "asset.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reviewed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """covers: 2×2 grid + 2 variant-test assets, 2 candidates each. One asset approved (and one
    of its candidates rejected), one approved for an earlier request (its approval is stale)."""
    root = tmp_path_factory.mktemp("reviewed")
    write_project(root, batches={"covers": BATCH + VARIANT})
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", STALE_ASSET, "1", "--pass", "all", "--by", "ana") == 0
    # A changed template changes every request: that approval is now for an earlier request.
    write_project(root, batches={"covers": BATCH + VARIANT}, templates={"cover.j2": TEMPLATE + "Natural skin.\n"})
    assert run_cli(root, "build") == 0
    assert run_cli(root, "reject", APPROVED_ASSET, "1", "--fail", "realism=too glossy", "--by", "ana") == 0
    assert run_cli(root, "approve", APPROVED_ASSET, "2", "--pass", "all", "--by", "ana") == 0
    return root


@pytest.fixture(scope="module")
def gallery_page(reviewed_project: Path) -> Path:
    assert run_cli(reviewed_project, "gallery") == 0
    return reviewed_project / "gallery" / "covers.html"


# -- in a real browser ----------------------------------------------------------------------------------


def chromium() -> str:
    """The Chromium binary; without one the browser tests fail under CI and skip elsewhere."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    message = f"chromium is not installed: {SETUP_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network chatter (this machine has no network) and its own profile."""
    command = [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1440,900",
        # Let lazy images near the viewport load before the DOM is dumped or the screenshot taken.
        "--virtual-time-budget=3000",
        *args,
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"chromium did not finish within {exc.timeout} s: {' '.join(command)}")


# Marks each image with its decoded width once it has loaded, so the dumped DOM shows which
# images the browser could actually open over file:// through their relative links.
PROBE = (
    "<script>document.addEventListener('load', e => { if (e.target.tagName === 'IMG')"
    " e.target.dataset.loaded = e.target.naturalWidth; }, true);</script>"
)


def test_page_in_headless_chromium(gallery_page: Path, tmp_path: Path) -> None:
    # A copy beside the page, so every relative link resolves as it does for the page itself.
    probe = gallery_page.with_name("covers.probe.html")
    probe.write_text(gallery_page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), "utf-8")
    started = time.monotonic()
    try:
        result = run_chromium(tmp_path / "profile", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.monotonic() - started < 30
    dom = parse_html(result.stdout)
    body = dom.one("body")
    assert (body.attrs["data-batch"], body.attrs["data-rows"], body.attrs["data-cols"]) == (
        "covers",
        "environment",
        "lighting",
    )

    # The grid: rows and columns are the axis values, in manifest order; the variant test's
    # value comes last and is marked.
    grid = dom.one("section", data_shot="hook").one("table", cls="grid")
    rows = [th.attrs["data-value"] for th in grid.all("th", cls="row-head")]
    cols = [th.attrs["data-value"] for th in grid.all("th", cls="col-head")]
    assert rows == ["home office", "cafe"]
    assert cols == ["morning light", "lamp light", "pink neon glow"]
    assert [th.attrs["data-value"] for th in grid.all("th", cls="variant-value")] == ["pink neon glow"]
    cell = grid.one("td", data_row="cafe", data_col="lamp light")
    assert [a.attrs["data-asset"] for a in cell.all("article")] == [APPROVED_ASSET]
    assert grid.all("td", data_row="cafe", data_col="morning light")[0].one("article").attrs["data-asset"] == (
        "covers.hook.cafe.morning-light"
    )

    # Badges: exactly one approved candidate, on the right card; its sibling rejected.
    approved = [f for f in dom.all("figure") if f.all("span", cls="approved")]
    assert [(f.attrs["data-candidate"], _card_of(f)) for f in approved] == [("2", APPROVED_ASSET)]
    card = dom.one("article", data_asset=APPROVED_ASSET)
    assert card.attrs["data-approval"] == "current"
    current = card.one("div", cls="current")
    assert current.one("figure", data_candidate="1").one("span", cls="badge").text == "rejected"
    assert current.one("figure", data_candidate="1").one("p", cls="why").text == "by ana; failed: realism (too glossy)"
    assert card.one("div", cls="review").one("span", cls="label").text.startswith("#2 approved by ana 20")
    assert [li.text for li in card.one("div", cls="review").all("li")] == [f"✓ {i}" for i in CHECKLIST_ITEMS]

    stale = dom.one("article", data_asset=STALE_ASSET)
    assert stale.attrs["data-approval"] == "stale"
    assert stale.one("p", cls="stale-note").one("span", cls="badge").text == "stale approval"
    assert {f.attrs["data-state"] for f in stale.one("div", cls="current").all("figure")} == {"unreviewed"}
    earlier = stale.one("details", cls="earlier")
    assert "open" not in earlier.attrs  # collapsed
    assert [f.attrs["data-state"] for f in earlier.all("figure")] == ["stale", "unreviewed"]

    others = [a for a in dom.all("article") if a.attrs["data-asset"] not in (APPROVED_ASSET, STALE_ASSET)]
    assert len(others) == 4
    assert all(f.attrs["data-state"] == "unreviewed" for a in others for f in a.all("figure"))

    # Variant tests: their cards carry the class, the data attribute and a visible ribbon.
    variant_cards = dom.all("article", cls="variant-test")
    assert sorted(a.attrs["data-asset"] for a in variant_cards) == [
        "covers.hook.vt-neon.cafe",
        "covers.hook.vt-neon.home-office",
    ]
    for variant_card in variant_cards:
        assert variant_card.attrs["data-variant-test"] == "neon"
        assert variant_card.one("div", cls="ribbon").text == "variant test: neon"
        assert variant_card.one("p", cls="prompt").text.endswith("pink neon glow. Natural skin.")
    plain = [a for a in dom.all("article") if ".vt-" not in a.attrs["data-asset"]]
    assert len(plain) == 4
    assert not any("data-variant-test" in a.attrs or "variant-test" in a.classes or a.all(cls="ribbon") for a in plain)

    # Each card: prompt, request hash, review checklist, links to the records.
    requests = {r.asset_id: r for r in resolve(gallery_page.parents[1]).requests["covers"]}
    for article in dom.all("article"):
        req = requests[article.attrs["data-asset"]]
        assert article.one("p", cls="prompt").text == req.prompt
        assert article.attrs["data-request-hash"] == req.request_hash
        assert article.one("p", cls="hashes").all("code")[0].attrs["title"] == req.request_hash
        assert article.all("div", cls="review")

    # Images: thumbnails cached under .imgbuild/thumbs/ (loaded at once, not lazily: a lazy image
    # out of view is a grey box in a screenshot or a print), sized so the layout does not jump,
    # each linked to its full image, all opened from disk through relative links.
    images = [img for img in dom.all("img") if not _in_details(img)]
    assert len(images) == 12
    for img in images:
        assert "loading" not in img.attrs
        assert (img.attrs["width"], img.attrs["height"], img.attrs["data-full-width"]) == ("360", "360", "2048")
        assert unquote(img.attrs["src"]).startswith("../.imgbuild/thumbs/")
        full = next(p for p in img.ancestors() if p.tag == "a").attrs["href"]
        assert unquote(full).startswith("../assets/") and full.endswith(".jpg")
    not_loaded = [img.attrs["src"] for img in images if img.attrs.get("data-loaded") != "360"]
    assert not not_loaded, f"images the browser could not open over file://: {not_loaded}"
    for link in [a.attrs["href"] for a in dom.all("a")]:
        if link.startswith("#"):
            continue
        assert not urlsplit(link).scheme and not link.startswith("/"), link
        assert (gallery_page.parent / unquote(link)).resolve().is_file(), link
    record_links = {Path(a.attrs["href"]).name for a in card.all("a")}
    assert {"asset.json", "request.json", "manifest.json"} <= record_links


def _card_of(node: Node) -> str:
    return next(p.attrs["data-asset"] for p in node.ancestors() if p.tag == "article")


def _in_details(node: Node) -> bool:
    return any(p.tag == "details" for p in node.ancestors())


def test_every_image_is_painted_in_a_headless_screenshot(gallery_page: Path, tmp_path: Path) -> None:
    """Taken the moment the page has loaded, as a headless screenshot or a print is: every image
    on the first screen is decoded and painted, none is the grey box of a lazy image not loaded."""
    from io import BytesIO

    from PIL import Image

    with webdriver_on_chromium(tmp_path / "profile") as driver:
        driver.get(gallery_page.as_uri())
        boxes = driver.execute_script(
            f"return {FIRST_SCREEN_IMAGES}.map(i => [i.complete && i.naturalWidth > 0,"
            " ...Object.values(i.getBoundingClientRect().toJSON()).slice(0, 4), devicePixelRatio])"
        )
        png = driver.get_screenshot_as_png()
    (tmp_path / "gallery.png").write_bytes(png)
    assert len(boxes) >= 8, f"only {len(boxes)} images on the first screen"
    with Image.open(BytesIO(png)) as shot:
        screen = shot.convert("RGB")
    placeholder = (0xE5, 0xE7, 0xEB)  # figure.cand img's background, all a lazy image shows
    for loaded, x, y, width, height, scale in boxes:
        assert loaded
        box = tuple(round(v * scale) for v in (x + 4, y + 4, min(x + width, 1440) - 4, min(y + height, 900) - 4))
        colours = screen.crop(box).getcolors(maxcolors=1 << 16) or []
        _, commonest = max(colours)
        assert commonest != placeholder, f"an unpainted image at {box}"
        assert len(colours) > 20, f"a blank image at {box}"


# -- plain Python -------------------------------------------------------------------------------------------


def test_default_axes_are_the_first_two_vary_attributes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In manifest order (not alphabetical); a third attribute is named on each card instead."""
    three = BATCH.replace("fixed:\n  wardrobe: cream sweater\n", "").replace(
        "vary:\n  environment: [home office, cafe]\n  lighting: [morning light, lamp light]\n",
        "vary:\n  lighting: [morning light, lamp light]\n  environment: [home office, cafe]\n"
        "  wardrobe: [cream sweater, navy blazer]\n",
    )
    write_project(tmp_path, batches={"covers": three})
    batch = resolve(tmp_path).batch("covers")
    assert batch_axes(batch) == ("lighting", "environment", "wardrobe")
    assert choose_axes(batch, None, None) == Axes(rows="lighting", cols="environment")
    assert choose_axes(batch, "wardrobe", None) == Axes(rows="wardrobe", cols="lighting")
    assert choose_axes(batch, None, "lighting") == Axes(rows="environment", cols="lighting")

    # Not built yet: the page still shows every asset, each saying so.
    assert run_cli(tmp_path, "gallery") == 0
    assert capsys.readouterr().out == (
        "gallery/covers.html: 8 assets, 0 candidates (0 approved, 0 stale approvals, 0 rejected, 0 unreviewed)\n"
    )
    dom = parse_html((tmp_path / "gallery" / "covers.html").read_text(encoding="utf-8"))
    grid = dom.one("table", cls="grid")
    assert [th.attrs["data-value"] for th in grid.all("th", cls="row-head")] == ["morning light", "lamp light"]
    assert [th.attrs["data-value"] for th in grid.all("th", cls="col-head")] == ["home office", "cafe"]
    cell = grid.one("td", data_row="lamp light", data_col="cafe")
    assert [a.one("p", cls="attrs").text for a in cell.all("article")] == [
        "wardrobe: cream sweater",
        "wardrobe: navy blazer",
    ]
    assert {a.one("p", cls="empty").text for a in dom.all("article")} == {"not built yet — run doit"}


def test_rows_and_cols_choose_the_grid(
    reviewed_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_cli(
            reviewed_project,
            "gallery",
            "covers",
            "--rows",
            "lighting",
            "--cols",
            "environment",
            "--out",
            str(tmp_path / "g"),
        )
        == 0
    )
    out = capsys.readouterr().out
    page = tmp_path / "g" / "covers.html"
    assert out.startswith(f"{page}: 6 assets, 12 candidates (1 approved, 1 stale approval, 1 rejected, 10 unreviewed)")
    dom = parse_html(page.read_text(encoding="utf-8"))
    grid = dom.one("table", cls="grid")
    assert [th.attrs["data-value"] for th in grid.all("th", cls="row-head")] == [
        "morning light",
        "lamp light",
        "pink neon glow",
    ]
    assert [th.attrs["data-value"] for th in grid.all("th", cls="col-head")] == ["home office", "cafe"]
    assert grid.one("td", data_row="lamp light", data_col="cafe").one("article").attrs["data-asset"] == APPROVED_ASSET
    # Links are relative to wherever the page was written.
    img = dom.all("img")[0]
    assert (page.parent / unquote(img.attrs["src"])).resolve().is_file()


def test_one_axis_is_a_single_row_and_none_a_flat_grid(tmp_path: Path) -> None:
    one = BATCH.replace("  environment: [home office, cafe]\n", "").replace("fixed:\n", "fixed:\n  environment: cafe\n")
    none = one.replace("vary:\n  lighting: [morning light, lamp light]\n", "").replace(
        "fixed:\n", "fixed:\n  lighting: lamp light\n"
    )
    write_project(tmp_path, batches={"one": one, "none": none})
    assert run_cli(tmp_path, "build") == 0
    assert run_cli(tmp_path, "gallery") == 0

    single = parse_html((tmp_path / "gallery" / "one.html").read_text(encoding="utf-8"))
    grid = single.one("table", cls="grid")
    assert not grid.all("th", cls="row-head")
    assert [th.attrs["data-value"] for th in grid.all("th", cls="col-head")] == ["morning light", "lamp light"]
    assert len(grid.all("tr", data_row="")) == 1
    assert len(grid.all("article")) == 2

    flat = parse_html((tmp_path / "gallery" / "none.html").read_text(encoding="utf-8"))
    assert not flat.all("table")
    assert len(flat.one("div", cls="flat").all("article")) == 1
    assert flat.one("body").attrs["data-rows"] == flat.one("body").attrs["data-cols"] == ""


def test_each_shot_is_its_own_section(tmp_path: Path) -> None:
    """A shot may vary what others fix: with that attribute as an axis, the other shot's grid has
    the one fixed value on that axis."""
    desk = (
        "  - id: desk\n    need: a desk shot\n"
        "    prompt: 'Mia at a desk in a {{ attrs.environment }}, {{ attrs.wardrobe }}, {{ attrs.lighting }}'\n"
        "    vary:\n      wardrobe: [navy blazer, cream sweater]\n"
    )
    write_project(tmp_path, batches={"covers": BATCH + desk})
    assert run_cli(tmp_path, "gallery", "--cols", "wardrobe") == 0
    dom = parse_html((tmp_path / "gallery" / "covers.html").read_text(encoding="utf-8"))
    assert [s.attrs["data-shot"] for s in dom.all("section")] == ["hook", "desk"]
    hook, desk_section = dom.all("section")
    assert [th.attrs["data-value"] for th in hook.all("th", cls="col-head")] == ["cream sweater"]
    assert [th.attrs["data-value"] for th in desk_section.all("th", cls="col-head")] == ["navy blazer", "cream sweater"]
    assert [th.attrs["data-value"] for th in desk_section.all("th", cls="row-head")] == ["home office", "cafe"]
    assert len(hook.all("article")) == 4 and len(desk_section.all("article")) == 8
    cell = desk_section.one("td", data_row="cafe", data_col="navy blazer")
    assert [a.one("p", cls="attrs").text for a in cell.all("article")] == [
        "lighting: morning light",
        "lighting: lamp light",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--rows", "mood"],
            "imgbuild: error: --rows 'mood' is not a varying attribute of batch 'covers'"
            " (valid: environment, lighting)\nno page was written\n",
        ),
        (
            ["--rows", "lighting", "--cols", "lighting"],
            "imgbuild: error: --rows and --cols both name 'lighting': choose two different attributes\n"
            "no page was written\n",
        ),
        (
            ["covers", "posters"],
            "imgbuild: error: unknown batch 'posters' (batches: covers); no page was written\n",
        ),
    ],
)
def test_bad_axis_or_batch_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    assert run_cli(tmp_path, "gallery") == 0
    before = (tmp_path / "gallery" / "covers.html").read_bytes()
    capsys.readouterr()
    assert run_cli(tmp_path, "gallery", *args) == 2
    assert capsys.readouterr().err == message
    assert (tmp_path / "gallery" / "covers.html").read_bytes() == before
    assert [p.name for p in (tmp_path / "gallery").iterdir()] == ["covers.html"]


def test_text_is_escaped(tmp_path: Path) -> None:
    hostile = BATCH.replace("purpose: covers for tests", "purpose: 'covers & <b>tests</b>'").replace(
        "    template: cover.j2\n",
        '    prompt: \'<script>alert("x")</script> {{ persona.name }} & co,'
        " {{ attrs.wardrobe }}, {{ attrs.environment }}, {{ attrs.lighting }}'\n",
    )
    write_project(tmp_path, batches={"covers": hostile})
    assert run_cli(tmp_path, "build") == 0
    assert run_cli(tmp_path, "gallery") == 0
    page = (tmp_path / "gallery" / "covers.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<b>tests" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Mia Tan &amp; co" in page
    dom = parse_html(page)
    assert dom.one("p", cls="purpose").text == "covers & <b>tests</b>"
    prompts = {p.text for p in dom.all("p", cls="prompt")}
    assert len(prompts) == 4 and all(p.startswith('<script>alert("x")</script> Mia Tan & co, ') for p in prompts)


def test_a_thousand_images_make_a_small_page(reviewed_project: Path, tmp_path: Path) -> None:
    """500 assets × 2 candidates: the page stays a few MB and is built in well under seconds per asset."""
    resolution = resolve(reviewed_project)
    batch = resolution.batch("covers")
    template = next(r for r in resolution.requests["covers"] if r.asset_id == APPROVED_ASSET)
    record = read_asset(reviewed_project, APPROVED_ASSET)
    requests = []
    for n in range(500):
        asset_id = f"covers.hook.cafe.lamp-light-{n:03d}"
        req = dataclasses.replace(template, asset_id=asset_id, asset_dir=f"assets/{asset_id}")
        requests.append(req)
        folder = reviewed_project / req.asset_dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "asset.json").write_text(json.dumps(record), encoding="utf-8")
    try:
        started = time.monotonic()
        page = build_page(reviewed_project, batch, requests, choose_axes(batch, None, None), tmp_path)
        elapsed = time.monotonic() - started
    finally:
        for req in requests:
            shutil.rmtree(reviewed_project / req.asset_dir)
    assert page.candidates == 1000
    size = len(page.html.encode("utf-8"))
    assert size < 3_000_000, f"{size:,} bytes for 1,000 images"
    assert elapsed < 5, f"{elapsed:.1f} s to build the page"
