"""Thin Airflow wrappers around the ``feedbackloop`` package: hooks, operators, notifiers.

Each operator stores its arguments, declares ``template_fields`` and, in ``execute``, calls
one function of ``feedbackloop.pipeline``. Heavy imports stay inside ``execute``.
"""
