"""``mmops`` commands of the governance stage (registered on :data:`flows.cli_common.app`)."""

from __future__ import annotations
