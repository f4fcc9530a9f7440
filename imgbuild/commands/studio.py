"""`imgbuild review`: serve the review studio on 127.0.0.1 until Ctrl-C (see imgbuild.studio)."""

from __future__ import annotations

import webbrowser
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from imgbuild.errors import EXIT_OK

__all__ = ["studio"]


def studio(root: Path, batches: Sequence[str], *, port: int, open_browser: bool, by: str | None) -> int:
    """Serve the studio for `batches` (default: all), print its address and, unless told not to,
    open it in the browser. Returns 0 when the server is stopped with Ctrl-C."""
    from imgbuild.studio import StudioServer, create_app  # the web stack loads only for this command

    server = StudioServer(create_app(root, batches, by=by), port)
    print(f"imgbuild review: {server.url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    with suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped, not an interruption (130)
        server.serve()
    print("imgbuild review: stopped", flush=True)
    return EXIT_OK
