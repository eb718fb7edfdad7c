"""The worker's control API and dashboard: FastAPI over the journal (see api.py)."""
