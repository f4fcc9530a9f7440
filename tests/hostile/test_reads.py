"""Class 2: reads stay inside the project. Every input file — manifest, persona, evidence,
reference, and whatever a template includes, imports or extends — is a regular file whose real
path is inside the project; anything else is an input error (exit 2) naming the file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import BATCH, PERSONA, TEMPLATE, write_project
from hostile_support import png_header
from PIL import Image

REFERENCE_BATCH = BATCH.replace(
    "    editable: [wardrobe, lighting]\n",
    "    editable: [wardrobe, lighting]\n    references:\n      - path: refs/face.png\n",
)


def link(path: Path, target: Path | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)


# -- evidence, personas, manifests ----------------------------------------------------------


def test_evidence_linked_out_of_the_project(project, refused):
    link(project / "evidence/mia.md", project.parent / "outside/secret.txt")
    refused(project, "personas/mia.yaml:7", "'evidence/mia.md' is a link to", "outside the project folder")


def test_evidence_linked_to_proc_environ(project, refused):
    link(project / "evidence/mia.md", "/proc/self/environ")
    refused(project, "personas/mia.yaml:7", "outside the project folder")


def test_evidence_linked_to_dev_zero(project, refused):
    link(project / "evidence/mia.md", "/dev/zero")
    refused(project, "personas/mia.yaml:7", "outside the project folder")


def test_evidence_is_a_fifo(project, refused):
    fifo(project / "evidence/mia.md")
    refused(project, "personas/mia.yaml:7", "'evidence/mia.md' is not a regular file (a FIFO)")


def test_evidence_over_the_size_cap(project, refused):
    with open(project / "evidence/mia.md", "wb") as f:
        f.truncate(257 * 1024 * 1024)  # sparse: costs no disk, and is refused before it is read
    refused(project, "personas/mia.yaml:7", "over the 268435456-byte cap")


def test_a_manifest_over_the_size_cap(project, refused):
    with open(project / "batches/covers.yaml", "ab") as f:
        f.truncate(5 * 1024 * 1024)
    refused(project, "batches/covers.yaml", "over the 4194304-byte cap")


def test_source_basis_linked_into_a_linked_folder(project, refused):
    link(project / "evidence/notes", project.parent / "outside")
    write_project(
        project, batches={"covers": BATCH.replace("  - path: evidence/mia.md", "  - path: evidence/notes/secret.txt")}
    )
    refused(project, "batches/covers.yaml:4", "outside the project folder")


def test_batch_manifest_linked_out(project, refused):
    (project.parent / "outside/covers.yaml").write_text(BATCH)
    link(project / "batches/covers.yaml", project.parent / "outside/covers.yaml")
    refused(project, "batches/covers.yaml", "is a link to a place outside the project folder")


def test_batch_manifest_is_a_fifo(project, refused):
    fifo(project / "batches/covers.yaml")
    refused(project, "batches/covers.yaml", "not a regular file (a FIFO)")


def test_persona_linked_out(project, refused):
    (project.parent / "outside/mia.yaml").write_text(PERSONA)
    link(project / "personas/mia.yaml", project.parent / "outside/mia.yaml")
    refused(project, "personas/mia.yaml", "outside the project folder", problems=1)


def test_config_linked_out(project, refused):
    (project.parent / "outside/imgbuild.yaml").write_text("budget: 5\n")
    link(project / "imgbuild.yaml", project.parent / "outside/imgbuild.yaml")
    refused(project, "imgbuild.yaml", "outside the project folder")


# -- templates: the file itself, and what it includes, imports or extends ----------------------


def test_template_linked_out(project, refused):
    (project.parent / "outside/cover.j2").write_text(TEMPLATE)
    link(project / "templates/cover.j2", project.parent / "outside/cover.j2")
    refused(project, "batches/covers.yaml:18", "outside")


@pytest.mark.parametrize(
    "statement",
    [
        "{% include 'part.j2' %}",
        "{% import 'part.j2' as part %}",
        "{% from 'part.j2' import x %}",
    ],
)
def test_template_includes_a_link_out(project, refused, statement):
    link(project / "templates/part.j2", project.parent / "outside/secret.txt")
    write_project(project, templates={"cover.j2": statement + "\n" + TEMPLATE})
    refused(project, "templates/part.j2", "is a link to a place outside the project folder")


def test_template_extends_a_link_to_proc(project, refused):
    link(project / "templates/base.j2", "/proc/self/environ")
    write_project(project, templates={"cover.j2": "{% extends 'base.j2' %}"})
    refused(project, "templates/base.j2", "outside the project folder")


def test_template_includes_a_fifo(project, refused):
    fifo(project / "templates/part.j2")
    write_project(project, templates={"cover.j2": "{% include 'part.j2' %}" + TEMPLATE})
    refused(project, "templates/part.j2", "not a regular file (a FIFO)")


def test_template_includes_a_parent_path(project, refused):
    write_project(project, templates={"cover.j2": "{% include '../evidence/mia.md' %}" + TEMPLATE})
    refused(project, "templates/cover.j2", "not found")


def test_template_is_not_utf8(project, refused):
    (project / "templates/cover.j2").write_bytes(b"Photo of {{ persona.name }}\n\xff\xfe caf\xe9\n")
    refused(project, "templates/cover.j2:2", "not UTF-8 text")


def test_included_template_is_not_utf8(project, refused):
    (project / "templates/part.j2").write_bytes(b"ok\n\xe9t\xe9\n")
    write_project(project, templates={"cover.j2": "{% include 'part.j2' %}" + TEMPLATE})
    refused(project, "templates/part.j2:2", "not UTF-8 text")


# -- references: decoded at load time, before any call ---------------------------------------


def reference_project(project: Path) -> Path:
    write_project(project, batches={"covers": REFERENCE_BATCH})
    (project / "refs").mkdir(exist_ok=True)
    return project


def test_reference_that_is_not_an_image(project, refused):
    (reference_project(project) / "refs/face.png").write_text("<html>not an image</html>")
    refused(project, "batches/covers.yaml:22", "reference image 'refs/face.png' is not a PNG, JPEG, WEBP image")


def test_reference_that_is_a_decompression_bomb(project, refused):
    (reference_project(project) / "refs/face.png").write_bytes(png_header(100_000, 100_000))
    refused(project, "batches/covers.yaml:22", "decompression bomb")


def test_reference_over_the_pixel_cap(project, refused):
    (reference_project(project) / "refs/face.png").write_bytes(png_header(9000, 9000))
    refused(project, "batches/covers.yaml:22", "9000×9000 pixels, over the cap")


def test_reference_in_a_format_no_provider_reads(project, refused):
    Image.new("RGB", (8, 8)).save(reference_project(project) / "refs/face.png", "GIF")
    refused(project, "batches/covers.yaml:22", "is not a PNG, JPEG, WEBP image")


def test_reference_truncated(project, refused):
    Image.new("RGB", (256, 256), (9, 99, 199)).save(reference_project(project) / "refs/face.png")
    data = (project / "refs/face.png").read_bytes()
    (project / "refs/face.png").write_bytes(data[: len(data) // 2])
    refused(project, "batches/covers.yaml:22", "does not decode whole")


def test_reference_linked_out(project, refused):
    Image.new("RGB", (8, 8)).save(project.parent / "outside/face.png")
    link(reference_project(project) / "refs/face.png", project.parent / "outside/face.png")
    refused(project, "batches/covers.yaml:22", "outside the project folder")


def test_reference_is_a_fifo(project, refused):
    fifo(reference_project(project) / "refs/face.png")
    refused(project, "batches/covers.yaml:22", "not a regular file (a FIFO)")
