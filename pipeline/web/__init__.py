"""The web application: FastAPI over the store and the job queue (`churnwatch serve` runs it).

`create_app(settings, engine)` builds the app; `app_from_env` is the factory uvicorn calls.
"""

from pipeline.web.app import WebConfig, app_from_env, create_app

__all__ = ["WebConfig", "app_from_env", "create_app"]
