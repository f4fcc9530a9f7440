"""Every kind of registry limit is an input error at load time, with the file and line, before any
call: region, reference count, reference bytes and pixels, output format, size, identity sets,
and a budget that cannot be checked in USD."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from helpers import PERSONA, model_batch, rejected, run_cli, summary, write_project
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _big_png() -> bytes:
    """A whole, valid 32x32 PNG just over 30 MB: a private ancillary chunk that decoders skip."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 90, 60)).save(buffer, "PNG")
    small = buffer.getvalue()
    return small[:-12] + _chunk(b"prVt", bytes(30 * 1024 * 1024 - len(small))) + small[-12:]


BIG_PNG = _big_png()


def batch(model: str, *, aspect: str = "1:1", output_format: str = "png", shot: str = "") -> str:
    hook = "  - id: hook\n    need: a first frame\n    template: cover.j2\n" + shot
    return model_batch(model, hook, aspect=aspect, output_format=output_format)


def project(tmp_path: Path, manifest: str, config: str = "provider: ark\n") -> Path:
    root = write_project(tmp_path, batches={"covers": manifest}, personas={"mia": PERSONA}, config=config)
    (root / "refs").mkdir()
    for i in range(11):
        Image.new("RGB", (32, 32), (i * 20, 90, 120)).save(root / "refs" / f"r{i}.png")
    (root / "refs" / "big.png").write_bytes(BIG_PNG)
    Image.new("L", (7000, 6000)).save(root / "refs" / "huge.png", compress_level=1)  # 42 MP, a small file
    return root


def refs(*names: str) -> str:
    return "    references:\n" + "".join(f"      - path: refs/{name}\n" for name in names)


CASES = {
    "region": (
        batch("image-seedream-v5-pro-text"),
        "provider: ark\nproviders:\n  ark:\n    region: eu-west\n",
        "batches/covers.yaml:6 model: Seedream 5.0 Pro is not served in ark region 'eu-west' "
        "(providers.ark.region in imgbuild.yaml); it is served in ap-southeast, cn-beijing",
    ),
    "reference count": (
        batch("image-seedream-v5-pro-text", shot=refs(*(f"r{i}.png" for i in range(11)))),
        "provider: ark\n",
        "batches/covers.yaml:19 shots[0].references: 11 reference images; ark takes at most 10 per call",
    ),
    "reference bytes": (
        batch("image-seedream-v5.5-text", shot=refs("big.png")),
        "provider: ark\n",
        f"batches/covers.yaml:19 shots[0].references: reference image 'refs/big.png' is {len(BIG_PNG):,} bytes; "
        "the limit is 31,457,280",
    ),
    "reference pixels": (
        batch("image-seedream-v5.5-text", shot=refs("huge.png")),
        "provider: ark\n",
        "batches/covers.yaml:19 shots[0].references: reference image 'refs/huge.png' has 42,000,000 pixels; "
        "the limit is 36,000,000",
    ),
    "output format": (
        batch("image-seedream-v4.5-text"),
        "provider: ark\n",
        "batches/covers.yaml:10 output_format: 'png' is not made by image-seedream-v4.5-text on ark (jpeg)",
    ),
    "size": (
        batch("image-seedream-v5-pro-text", aspect="16:9"),
        "provider: ark\n",
        "batches/covers.yaml:9 aspect_ratio: size 2848x1600 is outside what image-seedream-v5-pro-text makes "
        "(Seedream 5.0 Pro: 921,600-4,194,304 pixels; quality standard, aspect 16:9)",
    ),
    "identity set": (
        batch("image-seedream-v5.5-text", shot="    max_images: 3\n"),
        "provider: ark\n",
        "batches/covers.yaml:19 shots[0].max_images: Seedream 5.5 makes one image per call, no identity sets: "
        "drop `max_images`",
    ),
    "currency": (
        batch("image-seedream-v5-pro-text"),
        "provider: ark\nbudget: 5\nproviders:\n  ark:\n    region: cn-beijing\n",
        "imgbuild.yaml providers.ark.usd_per_cny: ark@cn-beijing bills in CNY and `budget:` is in USD: set "
        "providers.ark.usd_per_cny (the USD value of one CNY) so the budget can be checked",
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_kind_of_registry_limit_is_an_input_error_with_file_and_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, config, message = CASES[kind]
    root = project(tmp_path, manifest, config)
    assert rejected(root, capsys) == [message, summary(1)]


def test_what_the_region_serves_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eu = project(
        tmp_path, batch("image-seedream-v5-lite-text"), "provider: ark\nproviders:\n  ark:\n    region: eu-west\n"
    )
    assert run_cli(eu, "plan") == 0
    assert "image-seedream-v5-lite-text: 1 paid image × $0.035 = $0.04" in capsys.readouterr().out


def test_a_cny_route_is_priced_in_usd_at_the_projects_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = "provider: ark\nbudget: 1\nproviders:\n  ark:\n    region: cn-beijing\n    usd_per_cny: 0.5\n"
    root = project(tmp_path, batch("image-seedream-v5-pro-text"), config)
    assert run_cli(root, "plan") == 0
    out = capsys.readouterr().out
    # 2048x2048 is over 2.36 MP: the ¥0.60 band, at 0.5 USD per CNY
    assert "image-seedream-v5-pro-text: 1 paid image × ¥0.300-0.600 by size (at 0.5 USD per CNY) = $0.30" in out
    assert "estimated $0.30 at list prices (budget $1.00)" in out
