"""`imgbuild export`: the current approved images, with a manifest, for the render stage; each
exported copy carries XMP provenance that an independent reader (exiftool, Debian's
libimage-exiftool-perl, installed by tests/setup.sh) reads back, while the candidates and approved
copies in assets/ stay byte-identical to what the provider sent."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, run_cli, snapshot, write_project
from PIL import Image

from imgbuild.provenance import DIGITAL_SOURCE_TYPE

POSTERS = (
    BATCH.replace("output_format: jpeg", "output_format: png")
    .replace("candidates: 2", "candidates: 1")
    .replace("  environment: [home office, cafe]\n", "")
    .replace("fixed:\n  wardrobe: cream sweater", "fixed:\n  wardrobe: cream sweater\n  environment: cafe")
)
COVER = "covers.hook.cafe.lamp-light"
POSTER = "posters.hook.morning-light"


def exiftool(path: Path) -> dict[str, Any]:
    exe = shutil.which("exiftool")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("exiftool is missing: run `bash tests/setup.sh` (Debian's libimage-exiftool-perl)")
        pytest.skip("exiftool is missing: `bash tests/setup.sh` installs it")
    out = subprocess.run([exe, "-json", "-G1", "-XMP:all", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (tags,) = json.loads(out.stdout)
    return dict(tags)


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, image.size, image.tobytes()


@pytest.fixture(scope="module")
def approved_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("export") / "p", batches={"covers": BATCH, "posters": POSTERS})
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", COVER, "2", "--pass", "all", "--by", "ana", "--note", "the best light") == 0
    assert run_cli(root, "approve", POSTER, "1", "--pass", "all", "--fail", "realism=soft", "--override",
                   "--note", "good enough for a poster", "--by", "bo") == 0  # fmt: skip
    return root


@pytest.fixture
def project(approved_once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "p"
    shutil.copytree(approved_once, root)
    capsys.readouterr()
    return root


def test_export_copies_the_approved_images_with_a_manifest_and_lists_the_rest(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project / "assets")
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir)) == 1  # five assets have no approval
    out = capsys.readouterr().out.splitlines()
    assert sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()) == [
        f"covers/{COVER}.jpg",
        "imgbuild-export.json",
        f"posters/{POSTER}.png",
    ]
    unapproved = [line for line in out if line.startswith("unapproved: ")]
    assert len(unapproved) == 4  # 3 covers, 1 poster
    other = "covers.hook.cafe.morning-light"
    assert f"unapproved: assets/{other}: no approved image (run imgbuild approve {other} <candidate>)" in out
    assert out[-2:] == [
        "imgbuild export: 2 approved images to render/ (manifest render/imgbuild-export.json)",
        "imgbuild export: 4 of 6 assets have no current approved image",
    ]
    assert snapshot(project / "assets") == before  # nothing in assets/ changed

    assert run_cli(project, "export", "posters", "--to", str(tmp_path / "one"), "--allow-missing") == 0
    assert "imgbuild export: 1 approved image to one/ (manifest one/imgbuild-export.json)" in capsys.readouterr().out

    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    assert manifest["schema"] == "imgbuild.export/1"
    assert [m["id"] for m in manifest["missing"]] == sorted(line.split("/")[1].split(":")[0] for line in unapproved)
    cover, poster = manifest["assets"]
    lock = json.loads((project / "batches" / "covers.lock.json").read_text())["assets"][COVER]
    assert cover["id"] == COVER and cover["batch"] == "covers" and cover["shot"] == "hook"
    assert cover["attributes"] == {
        "fixed": {"wardrobe": "cream sweater"},
        "vary": {"environment": "cafe", "lighting": "lamp light"},
    }
    assert (cover["request_hash"], cover["prompt_hash"], cover["model"]) == (
        lock["request_hash"], lock["prompt_hash"], lock["model"])  # fmt: skip
    assert cover["source_basis"] == lock["source_basis"]
    assert cover["source"] == {"file": lock["approval"]["file"], "sha256": lock["approval"]["sha256"]}
    assert cover["approval"]["candidate"] == "2" and cover["approval"]["by"] == "ana"
    assert cover["approval"]["note"] == "the best light"
    assert set(cover["approval"]["checklist"]) == {
        "realism",
        "benchmark-fit",
        "repeatability",
        "copied-creator",
        "ad-drift",
    }
    assert poster["approval"]["override"] is True
    assert poster["approval"]["checklist"]["realism"] == {"result": "fail", "note": "soft"}
    for entry in manifest["assets"]:
        assert hashlib.sha256((out_dir / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]


def test_exported_images_carry_xmp_that_exiftool_reads_and_the_same_pixels(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    for entry in manifest["assets"]:
        exported = out_dir / entry["file"]
        source = (project / entry["source"]["file"]).read_bytes()
        assert hashlib.sha256(source).hexdigest() == entry["source"]["sha256"]  # the approved copy, untouched
        tags = exiftool(exported)
        assert tags["XMP-iptcExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert tags["XMP-iptcExt:AISystemUsed"] == entry["model"] == "image-seedream-v5-lite-text"
        assert tags["XMP-iptcExt:AISystemVersionUsed"] == entry["provider_model"]
        assert tags["XMP-imgbuild:AssetID"] == entry["id"]
        assert tags["XMP-imgbuild:RequestHash"] == entry["request_hash"]
        assert tags["XMP-xmp:CreatorTool"].startswith("imgbuild ")
        # Not re-encoded: the same pixels, and the file only grew by the metadata.
        data = exported.read_bytes()
        assert pixels(data) == pixels(source)
        assert len(source) < len(data) < len(source) + 2048
        # The approved copy itself carries no XMP.
        assert "XMP-imgbuild:AssetID" not in exiftool(project / entry["source"]["file"])


def test_a_second_export_is_stable_and_drops_what_lost_its_approval(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    first = snapshot(out_dir)
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    assert snapshot(out_dir) == first  # same names, same bytes
    # The poster's manifest changes: its approval is stale now, so its export goes.
    posters = project / "batches" / "posters.yaml"
    posters.write_text(posters.read_text().replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    capsys.readouterr()
    assert run_cli(project, "export", "posters", "--to", str(out_dir)) == 1
    out = capsys.readouterr().out
    assert f"stale approval: assets/{POSTER}: approved candidate 1 was made for an older request" in out
    assert not (out_dir / "posters" / f"{POSTER}.png").exists()
    # The folder holds what this export selected, and only that: the covers went too.
    assert not (out_dir / "covers" / f"{COVER}.jpg").exists()
    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    assert manifest["assets"] == []
    assert [m["id"] for m in manifest["missing"]] == ["posters.hook.lamp-light", POSTER]


def test_an_unknown_batch_is_a_usage_error(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(project, "export", "nope", "--to", str(tmp_path / "out")) == 2
    assert "no batch 'nope' in this project (batches: covers, posters)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_folder_that_is_not_its_own(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project)
    (tmp_path / "afile").write_text("not a folder")
    (project / "render-link").symlink_to(project / "assets", target_is_directory=True)
    records = "which holds the asset records: export to a folder of its own, e.g. --to render"
    for to, message in (
        ("assets", f"/assets: the export would write into assets/, {records}"),
        (f"assets/{COVER}", f"/assets/{COVER}: the export would write into assets/, {records}"),
        ("render-link/out", f"/render-link/out: the export would write into assets/, {records}"),
        (str(tmp_path / "afile"), f"--to {tmp_path / 'afile'}: a file, not a folder"),
        (str(tmp_path / "afile" / "x"), f"--to {tmp_path / 'afile' / 'x'}: cannot make the export folder"),
    ):
        assert run_cli(project, "export", "--to", to, "--allow-missing") == 2, to
        assert message in capsys.readouterr().err
    (project / "render-link").unlink()
    assert snapshot(project) == before
    # A batch folder of the export that is a link into the assets counts too.
    out_dir = tmp_path / "render"
    out_dir.mkdir()
    (out_dir / "covers").symlink_to(project / "assets", target_is_directory=True)
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 2
    assert "the export would write into assets/" in capsys.readouterr().err
    assert snapshot(project) == before


def test_an_edited_export_manifest_removes_nothing_but_exported_images(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    (out_dir / "notes.txt").write_text("the render stage's own file")
    (out_dir / "keep").symlink_to(project / "assets", target_is_directory=True)
    approved = json.loads((out_dir / "imgbuild-export.json").read_text())["assets"][0]["source"]["file"]
    manifest_path = out_dir / "imgbuild-export.json"
    manifest = json.loads(manifest_path.read_text())
    inside_assets = "keep/" + approved.removeprefix("assets/").split("/", 1)[0] + ".jpg"
    (project / "assets" / Path(inside_assets).name).write_bytes(b"an image the user keeps")
    manifest["assets"] += [{"file": "notes.txt"}, {"file": inside_assets}, {"file": "../p/imgbuild.yaml"}]
    manifest_path.write_text(json.dumps(manifest))
    before = snapshot(project)
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    assert (out_dir / "notes.txt").read_text() == "the render stage's own file"
    assert snapshot(project) == before


def _test_signer(folder: Path) -> tuple[Path, Path]:
    """A throwaway CA and a signing certificate it issued (ES256), as a user's would be."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imgbuild tests"),
            ]
        )

    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signing_key: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("imgbuild test CA", ca_key, name("imgbuild test CA"), ca_key, ca=True)
    leaf = cert("imgbuild test signer", key, ca.subject, ca_key, ca=False)
    chain, private = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return chain, private


def test_export_signs_c2pa_content_credentials_with_the_users_certificate(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c2pa = pytest.importorskip("c2pa", reason="the c2pa extra (in the test extra) is not installed")
    chain, key = _test_signer(tmp_path)
    out_dir = tmp_path / "render"
    code = run_cli(
        project, "export", "--to", str(out_dir), "--allow-missing", "--c2pa-cert", str(chain), "--c2pa-key", str(key)
    )
    assert code == 0, capsys.readouterr()
    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    for entry in manifest["assets"]:
        exported = out_dir / entry["file"]
        data = exported.read_bytes()
        mime = "image/png" if entry["file"].endswith(".png") else "image/jpeg"
        with c2pa.Reader(mime, io.BytesIO(data)) as reader:
            store = json.loads(reader.json())
        active = store["manifests"][store["active_manifest"]]
        assertions = {a["label"]: a["data"] for a in active["assertions"]}
        (action,) = next(v for k, v in assertions.items() if k.startswith("c2pa.actions"))["actions"]
        assert action["action"] == "c2pa.created"
        assert action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert action["softwareAgent"]["name"] == entry["model"]
        assert assertions["dev.imgbuild.asset"]["asset_id"] == entry["id"]
        assert assertions["dev.imgbuild.asset"]["request_hash"] == entry["request_hash"]
        assert active["signature_info"]["common_name"] == "imgbuild test signer"
        # Valid but for trust: the test CA is in no trust list, as a user's own CA would not be.
        assert [s["code"] for s in store.get("validation_status", [])] == ["signingCredential.untrusted"]
        # The XMP stays readable and the pixels are the provider's.
        assert exiftool(exported)["XMP-imgbuild:AssetID"] == entry["id"]
        assert pixels(data) == pixels((project / entry["source"]["file"]).read_bytes())
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_a_key_c2pa_refuses_stops_the_export_before_the_folder_changes(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("c2pa", reason="the c2pa extra (in the test extra) is not installed")
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    exported = snapshot(out_dir)
    chain, _ = _test_signer(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = _test_signer(tmp_path / "other")
    for key in (chain, other_key):  # a certificate as the key, and a key that is not the certificate's
        args = ("--c2pa-cert", str(chain), "--c2pa-key", str(key))
        assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing", *args) == 2
        assert "imgbuild: error: --c2pa-cert/--c2pa-key: C2PA signing failed: " in capsys.readouterr().err
        assert snapshot(out_dir) == exported  # the images exported before are still there


def test_c2pa_signing_needs_both_the_certificate_and_the_key(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "export", "--to", str(tmp_path / "out"), "--c2pa-cert", str(tmp_path / "x.pem")) == 2
    assert "C2PA signing needs both --c2pa-cert and --c2pa-key" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
