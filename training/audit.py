"""The append-only audit log of the registry: one JSON line per alias change or decision.

Lines are appended under an exclusive ``flock`` and fsynced, so concurrent governance commands
cannot interleave or lose an entry; ``seq`` numbers them in the order they happened.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class AuditLog:
    """Append-only JSONL file; never rewritten, only appended to and read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Append one entry, numbered after the last one; returns what was written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                seq = sum(1 for line in fh if line.strip()) + 1
                record = {"seq": seq, **entry}
                fh.write(json.dumps(record, sort_keys=False, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return record

    def entries(self) -> list[dict[str, Any]]:
        """Every entry in order ([] when the log does not exist yet)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
