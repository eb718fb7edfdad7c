"""Monitoring (ARCHITECTURE step 9): drift of features, predictions and realised results.

It lives under ``training/`` because it needs what only this layer may reach: the champion's
training window from its MLflow lineage (through :mod:`training.tracking` and
:mod:`training.registry`, the only MLflow modules), the feature code (``features``) and the
worker's journal (``trading.worker``). ``serving`` sits above and is not imported: the prediction
log is read as the JSON lines it documents. Evidently is imported only here.
"""

from training.monitor.config import MonitorConfig
from training.monitor.verdict import EVENT, DriftVerdict, Performance, judge, resource_id

__all__ = ["EVENT", "DriftVerdict", "MonitorConfig", "Performance", "judge", "resource_id"]
