"""The model-quality dashboard inside the Airflow UI (an Airflow 3 FastAPI plugin).

* :mod:`.app` - the FastAPI app mounted under ``/feedbackloop``: the page, a JSON API under
  ``/feedbackloop/api/...``, the stylesheet and the staged gate reports. Every route needs
  an Airflow JWT (:mod:`.auth`).
* :mod:`.render` - the page as server-rendered HTML with inline SVG charts drawn in Python:
  no JavaScript, no CDN, nothing fetched from outside the api-server.
* :mod:`.pool` - pooled psycopg connections to the feedback DB from the ``feedback_db``
  Airflow connection.

The data itself comes from :mod:`feedbackloop.dashboard_data` (Airflow-free, unit-tested).
``plugins/feedbackloop_dashboard_plugin.py`` registers the app and its navigation entry.
"""
