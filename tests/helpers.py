"""Small helpers shared by the tests (importable thanks to pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path


def store_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content, to prove a store unchanged."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
