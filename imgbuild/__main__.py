from __future__ import annotations

from imgbuild.main import run

raise SystemExit(run())
