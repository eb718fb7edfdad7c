"""``mmops`` commands of the trading stage (registered on :data:`flows.cli_common.app`)."""

from __future__ import annotations
