"""The `imgbuild` command line: parse arguments, dispatch to a command, map failures to exit codes."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgbuild import __version__
from imgbuild.error_handler import error_handler
from imgbuild.log import setup_logging
from imgbuild.project import STATE_DIR, find_project_root

if TYPE_CHECKING:
    from imgbuild.provenance import C2paSigner

__all__ = ["main", "run"]


SHARD_HELP = "only the assets of shard I of N, split by a hash of the asset id (also: $IMGBUILD_SHARD)"


_FILE, _DIRECTORY = "file", "directory"  # what an option completes to: shtab's, once it is imported


class _PrintCompletion(argparse.Action):
    """``--print-completion SHELL``: the completion script shtab writes for this parser. shtab is
    imported only here (it was a tenth of `imgbuild check`'s start-up); its shells are the choices
    (shtab 1.13: bash, zsh, tcsh, fish, powershell)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        import shtab

        shells = shtab.SUPPORTED_SHELLS
        if values not in shells:
            parser.error(f"argument --print-completion: invalid choice: {values!r} (choose from {', '.join(shells)})")
        self.choices = shells  # the script completes them too
        completes = {_FILE: shtab.FILE, _DIRECTORY: shtab.DIRECTORY}
        for action in _actions(parser):
            marker = getattr(action, "complete", None)
            if isinstance(marker, str) and marker in completes:
                action.complete = completes[marker]  # type: ignore[attr-defined]
        print(shtab.complete(parser, values))
        parser.exit(0)


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgbuild",
        description="Declarative, incremental builds of AI image batches.",
    )
    parser.add_argument("--version", action="version", version=f"imgbuild {__version__}")
    parser.add_argument(
        "--print-completion",
        action=_PrintCompletion,
        metavar="SHELL",
        help="print a shell completion script (bash, zsh, tcsh, fish or powershell)",
    )
    parser.add_argument(
        "-C", dest="directory", metavar="DIR", default=".", help="run as if started in DIR"
    ).complete = _DIRECTORY  # type: ignore[attr-defined]
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="scaffold a working project (config, dodo.py, persona, evidence, batch, template)")
    p.add_argument("folder", nargs="?", default=".", help="where to create it (default: here)")

    p = sub.add_parser("plan", help="what a build would generate, why, and what it would cost")
    p.add_argument("-v", "--verbose", action="store_true", help="list every asset that would be generated")
    p.add_argument(
        "selection", nargs="*", help="price what `imgbuild build SELECTION` would make (batch ids, task globs)"
    )
    _json_option(p)
    p.add_argument("--shard", default=None, metavar="I/N", help=SHARD_HELP)

    p = sub.add_parser("build", help="generate every stale image (the same as running doit)")
    p.add_argument("selection", nargs="*", help="batch ids or task globs (e.g. covers 'covers:*hook*'); default: all")
    p.add_argument(
        "-j", "--jobs", type=int, default=None, help="images generated at once (default: concurrency in imgbuild.yaml)"
    )
    p.add_argument("--provider", default=None, help="override the provider (also: $IMGBUILD_PROVIDER)")
    p.add_argument("--shard", default=None, metavar="I/N", help=SHARD_HELP)

    p = sub.add_parser(
        "check", help="CI: exit 1 if any asset is stale, missing or orphaned (no network, no local database)"
    )
    p.add_argument("--approved", action="store_true", help="also fail when an asset has no current approved image")
    p.add_argument("--strict", action="store_true", help="also fail when evidence changed since the images were made")
    p.add_argument(
        "--format",
        dest="output",
        choices=("text", "json", "github"),
        default="text",
        help="github: also ::error annotations on the manifest lines and a table in $GITHUB_STEP_SUMMARY",
    )
    p.add_argument("--json", dest="output", action="store_const", const="json", help="the same as --format json")
    p.add_argument("--shard", default=None, metavar="I/N", help=SHARD_HELP)

    p = sub.add_parser("merge", help="after a sharded build: write every batch's lock file from the records (no call)")

    p = sub.add_parser("ls", help="list assets with their state (current, changed, interrupted, approved...)")
    p.add_argument("selection", nargs="*", help="batch ids or asset globs (e.g. covers 'covers:*park*'); default: all")
    p.add_argument("--state", default=None, help="only assets in this state (current, changed, interrupted, broken, "
                   "orphaned, approved, stale, rejected, unreviewed)")  # fmt: skip
    _json_option(p)

    p = sub.add_parser("prune", help="remove orphaned asset folders and lock files of deleted batches (dry run)")
    p.add_argument("--yes", action="store_true", help="really remove them")
    p.add_argument("--approved", action="store_true", help="also remove orphans that hold approved images")

    p = sub.add_parser("status", help="per-batch summary of what is built and approved")
    _json_option(p)

    p = sub.add_parser("explain", help="why an asset is stale, and whether it would be edited or regenerated")
    p.add_argument("asset", help="asset id (see `imgbuild ls`)")
    _json_option(p)

    p = sub.add_parser("poll", help="finish in-flight provider jobs of an interrupted build (no new paid calls)")
    p.add_argument("--provider", default=None, help="override the provider (also: $IMGBUILD_PROVIDER)")
    p.add_argument(
        "request", nargs="?", type=Path, default=None, help="only this request file's calls (see `imgbuild call`)"
    ).complete = _FILE  # type: ignore[attr-defined]

    p = sub.add_parser("call", help="make one candidate of a normalized request file, recorded as a build does")
    p.add_argument(
        "request", type=Path, help="a run's request.json, its `request` part, or one written by hand"
    ).complete = _FILE  # type: ignore[attr-defined]
    p.add_argument("--candidate", type=int, default=None, help="which candidate (default: the first not made)")

    p = sub.add_parser("upload", help="upload a project image to the provider's media storage; print its URL")
    p.add_argument("image", type=Path, help="an image file inside the project").complete = _FILE  # type: ignore[attr-defined]
    p.add_argument("--provider", default=None, help="override the provider (also: $IMGBUILD_PROVIDER)")

    for decision in ("approve", "reject"):
        p = sub.add_parser(decision, help=f"{decision} a candidate, recording the review checklist")
        p.add_argument("asset", help="asset id")
        p.add_argument(
            "candidate", help="candidate number K (of an identity set: the whole set), or K.I for image I of a set"
        )
        p.add_argument(
            "--pass",
            dest="passed",
            action="append",
            default=[],
            metavar="ITEM[=NOTE]",
            help="a checklist item that passes ('all' for every item)",
        )
        p.add_argument(
            "--fail",
            dest="failed",
            action="append",
            default=[],
            metavar="ITEM[=NOTE]",
            help="a checklist item that fails",
        )
        p.add_argument(
            "--note",
            default=None,
            help="a note on the decision" + (" (required with --override)" if decision == "approve" else ""),
        )
        p.add_argument("--by", default=None, help="who decides (default: $IMGBUILD_REVIEWER, git user.name, $USER)")
        if decision == "approve":
            p.add_argument("--override", action="store_true", help="approve although a checklist item fails")

    p = sub.add_parser("export", help="copy the current approved images, with provenance, for the render stage")
    p.add_argument("batches", nargs="*", help="batch ids (default: all)")
    p.add_argument(
        "--to", required=True, type=Path, metavar="DIR", help="the export folder (created if needed)"
    ).complete = _DIRECTORY  # type: ignore[attr-defined]
    p.add_argument("--allow-missing", action="store_true", help="exit 0 even when some assets have no approval")
    p.add_argument(
        "--c2pa-cert", type=Path, default=None, metavar="PEM", help="also sign C2PA Content Credentials: cert chain"
    ).complete = _FILE  # type: ignore[attr-defined]
    p.add_argument(
        "--c2pa-key", type=Path, default=None, metavar="PEM", help="the private key of --c2pa-cert"
    ).complete = _FILE  # type: ignore[attr-defined]
    p.add_argument("--c2pa-alg", default="es256", help="the key's signing algorithm (default: es256)")

    p = sub.add_parser("review", help="the review studio: choose, approve and compare candidates in the browser")
    p.add_argument("batches", nargs="*", help="batch ids (default: all)")
    p.add_argument("--no-open", dest="open_browser", action="store_false", help="do not open the browser")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    p.add_argument("--by", default=None, help="who decides (default: $IMGBUILD_REVIEWER, git user.name, $USER)")

    p = sub.add_parser("gallery", help="write a static HTML contact sheet per batch")
    p.add_argument("batches", nargs="*", help="batch ids (default: all)")
    p.add_argument("--rows", default=None, metavar="AXIS", help="vary attribute for the rows")
    p.add_argument("--cols", default=None, metavar="AXIS", help="vary attribute for the columns")
    p.add_argument(
        "--out", default=None, metavar="DIR", help="where to write the pages (default: gallery/)"
    ).complete = _DIRECTORY  # type: ignore[attr-defined]
    return parser


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON document (schemas/output/)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code."""
    with error_handler() as code:
        args = _parse_args(argv)
        setup_logging()
        start = Path(args.directory).resolve()
        # Inside the handler: outside a project this raises NotAProject (exit 2), and nothing
        # (not even a crash log) is written before the project is known.
        root = start if args.command == "init" else find_project_root(start)
        code.log_dir = root / STATE_DIR / "logs"
        code.value = _dispatch(args, root)
    return code.value


def run() -> int:
    """The console script and ``python -m imgbuild``: `main`, then everything the finished command
    left alive frozen out of the full collection Python makes while it exits (8 ms of a 130 ms
    `imgbuild check` at 10,000 assets: every module, class and function walked once more). Files
    are closed and logs flushed by then; `main` itself stays as it is for callers in-process."""
    code = main()
    gc.freeze()
    return code


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line. `--help` and `--print-completion` print and exit from inside the
    parser: what they printed is flushed here, so a reader that went away (`... | head`) ends them
    with 141 and no traceback, as for every command."""
    try:
        return _parser().parse_args(argv)
    except SystemExit:
        sys.stdout.flush()
        raise


def _dispatch(args: argparse.Namespace, root: Path) -> int:
    if args.command == "init":
        from imgbuild.commands.init import init

        return init(root / args.folder)
    if args.command == "plan":
        from imgbuild.commands.plan import plan

        return plan(root, verbose=args.verbose, selection=args.selection, as_json=args.as_json, shard=args.shard)
    if args.command == "build":
        from imgbuild.commands.build import build

        return build(root, selection=args.selection, jobs=args.jobs, provider=args.provider, shard=args.shard)
    if args.command == "check":
        from imgbuild.commands.check import check

        return check(root, approved=args.approved, strict=args.strict, output=args.output, shard=args.shard)
    if args.command == "merge":
        from imgbuild.commands.merge import merge

        return merge(root)
    if args.command == "ls":
        from imgbuild.commands.ls import ls

        return ls(root, args.selection, state=args.state, as_json=args.as_json)
    if args.command == "prune":
        from imgbuild.commands.prune import prune

        return prune(root, yes=args.yes, approved=args.approved)
    if args.command == "status":
        from imgbuild.commands.status import status

        return status(root, as_json=args.as_json)
    if args.command == "explain":
        from imgbuild.commands.explain import explain

        return explain(root, args.asset, as_json=args.as_json)
    if args.command == "poll" and args.request is not None:
        from imgbuild.commands.poll import poll_request

        return poll_request(root, Path(args.directory, args.request))
    if args.command == "poll":
        from imgbuild.commands.poll import poll

        return poll(root, provider=args.provider)
    if args.command == "call":
        from imgbuild.commands.call import call

        return call(root, Path(args.directory, args.request), candidate=args.candidate)
    if args.command == "upload":
        from imgbuild.commands.upload import upload

        return upload(root, Path(args.directory, args.image), provider=args.provider)
    if args.command in ("approve", "reject"):
        from imgbuild.commands.review import review

        return review(
            root,
            args.command,
            args.asset,
            args.candidate,
            passed=args.passed,
            failed=args.failed,
            note=args.note,
            by=args.by,
            override=getattr(args, "override", False),
        )
    if args.command == "export":
        from imgbuild.commands.export import export

        return export(
            root,
            args.batches,
            to=Path(args.directory, args.to),
            allow_missing=args.allow_missing,
            signer=_c2pa_signer(args),
        )

    if args.command == "review":
        from imgbuild.commands.studio import studio

        return studio(root, args.batches, port=args.port, open_browser=args.open_browser, by=args.by)
    if args.command == "gallery":
        from imgbuild.commands.gallery import gallery

        return gallery(root, args.batches, rows=args.rows, cols=args.cols, out=args.out)
    raise AssertionError(f"unhandled command {args.command!r}")


def _c2pa_signer(args: argparse.Namespace) -> C2paSigner | None:
    """The C2PA signer of `export`, from --c2pa-cert and --c2pa-key (both, or neither)."""
    from imgbuild.errors import UsageError
    from imgbuild.provenance import C2paSigner

    if args.c2pa_cert is None and args.c2pa_key is None:
        return None
    if args.c2pa_cert is None or args.c2pa_key is None:
        raise UsageError("C2PA signing needs both --c2pa-cert and --c2pa-key")
    import importlib.util

    if importlib.util.find_spec("c2pa") is None:
        raise UsageError("C2PA signing needs the c2pa extra: python3 -m pip install 'imgbuild[c2pa]'")
    try:
        cert, key = (Path(args.directory, p).read_bytes() for p in (args.c2pa_cert, args.c2pa_key))
    except OSError as exc:
        raise UsageError(f"cannot read the C2PA certificate or key: {exc}") from None
    return C2paSigner(cert, key, args.c2pa_alg)
