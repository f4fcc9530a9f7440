"""`imgbuild gallery`: write a static HTML contact sheet per batch (see imgbuild.gallery)."""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.gallery import GalleryUsageError, axis_problems, build_page, choose_axes
from imgbuild.records.atomic import atomic_write_bytes
from imgbuild.resolve import resolve
from imgbuild.thumbs import Thumbnails

__all__ = ["DEFAULT_OUT", "gallery"]

DEFAULT_OUT = "gallery"


def gallery(root: Path, batches: list[str], *, rows: str | None, cols: str | None, out: str | None) -> int:
    """Write ``<out>/<batch>.html`` for each batch named (default: every batch) and print each
    page's path. The pages show thumbnails cached under ``.imgbuild/thumbs/``, linked to the
    full images. A relative `out` is taken from the project root (default: ``gallery/``).

    An unknown batch or axis stops before anything is written, naming the valid choices."""
    resolution = resolve(root)
    project = resolution.project
    known = [b.id for b in project.batches]
    chosen = list(dict.fromkeys(batches)) or known
    unknown = [name for name in chosen if name not in known]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise GalleryUsageError(
            f"unknown batch{'es' if len(unknown) != 1 else ''} {names} (batches: {', '.join(known) or 'none'});"
            " no page was written"
        )
    # Check every batch before writing any page, so a typo leaves no half-updated gallery.
    problems = [msg for batch_id in chosen for msg in axis_problems(resolution.batch(batch_id), rows, cols)]
    if problems:
        raise GalleryUsageError("\n".join([*problems, "no page was written"]))

    folder = (resolution.root / (out or DEFAULT_OUT)).resolve()
    temp_dir = resolution.root / ".imgbuild" / "tmp"
    thumbnails = Thumbnails(resolution.root)  # made once per image, shared with `imgbuild review`
    for batch_id in chosen:
        batch = resolution.batch(batch_id)
        axes = choose_axes(batch, rows, cols)
        page = build_page(resolution.root, batch, resolution.requests[batch_id], axes, folder, thumbnails)
        target = folder / f"{batch_id}.html"
        # --out is the user's own choice of folder, anywhere; the default one stays in the project.
        atomic_write_bytes(target, page.html.encode("utf-8"), temp_dir=temp_dir, confine=out is None)
        print(f"{_shown(target, resolution.root)}: {page.summary()}")
    if not chosen:
        print("imgbuild gallery: the project has no batches; no page was written")
    return EXIT_OK


def _shown(path: Path, root: Path) -> str:
    """A written page as the user finds it: project-relative when inside the project."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
