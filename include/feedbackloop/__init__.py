"""feedbackloop: the Airflow-free domain logic of the closed-loop email classifier pipeline.

Everything here is plain Python over DataFrames, dataclasses and database connections; the
Airflow operators in ``plugins/`` call one function from here per pipeline stage.
"""

from __future__ import annotations

__version__ = "0.1.0"
