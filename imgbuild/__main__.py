from __future__ import annotations

from imgbuild.main import main

raise SystemExit(main())
