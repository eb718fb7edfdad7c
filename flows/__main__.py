"""``python -m flows`` is the ``mmops`` command."""

from flows.cli import app

app(prog_name="mmops")
