"""imgbuild: declarative, incremental builds of AI image batches."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
