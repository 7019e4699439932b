"""The `churnwatch` command line: one module per command group, all on one Typer app.

`shared` holds the app, the common options and the one place that turns a ChurnwatchError into
a one-line message; importing the command modules registers their commands on the app, in the
order `churnwatch --help` lists them.
"""

# isort: off
from pipeline.cli import database  # noqa: F401  (init, purge)
from pipeline.cli import models  # noqa: F401
from pipeline.cli import calls  # noqa: F401  (transcribe, ingest)
from pipeline.cli import rules  # noqa: F401  (rules ..., detect)
from pipeline.cli import crm, risk, reminders, coach, demo  # noqa: F401
from pipeline.cli import serve  # noqa: F401  (serve, worker, users, tokens)
from pipeline.cli import funnel  # noqa: F401  (funnel)
from pipeline.cli import accounts  # noqa: F401  (accounts dormant, accounts plan)
# isort: on
from pipeline.cli.coach import coach_app
from pipeline.cli.models import models_app
from pipeline.cli.shared import app

__all__ = ["app", "coach_app", "models_app"]
