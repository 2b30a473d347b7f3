"""Registers the model-quality dashboard with Airflow 3: a FastAPI app and a navigation entry.

The app (``feedbackloop_dashboard.app``) is mounted by the api-server under
``/feedbackloop``; the external view adds "Model quality" to the UI's navigation and shows the
page inside the Airflow UI (at ``/plugin/model-quality``). Every route of the app requires an
Airflow login (the UI's ``_token`` cookie or a Bearer JWT).

Building the app imports FastAPI only; the database, the auth manager and ``feedbackloop``'s
heavier modules are imported on the first request, so loading plugins stays cheap for the
scheduler, workers and DAG processor.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from feedbackloop_dashboard.app import URL_PREFIX, create_app


class FeedbackLoopDashboardPlugin(AirflowPlugin):
    """The model-quality dashboard (page + JSON API) and its "Model quality" menu entry."""

    name = "feedbackloop_dashboard"
    fastapi_apps = [
        {
            "app": create_app(),
            "url_prefix": URL_PREFIX,
            "name": "Model-quality dashboard",
        }
    ]
    external_views = [
        {
            "name": "Model quality",
            # Relative (no leading slash): resolved against the api-server's base URL, so it
            # also works behind a reverse proxy with a path prefix.
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "model-quality",
            "destination": "nav",
            "category": "browse",
        }
    ]
