"""Realistic synthetic data: labelled inbox emails and a streaming simulator of the app's tables.

* :func:`render_email` renders one email of a taxonomy category, optionally a problem-area
  variant that looks like a confusable category.
* :func:`seed_corpus` builds the seed training corpus (``golden_set/seed_corpus.jsonl``),
  disjoint from the golden set.
* :func:`iter_app_data` streams :class:`AppItem` rows for the app tables (emails,
  predictions, category corrections, action feedback, engagement events) with injected,
  labelled defects; :func:`load_app_data` COPYs them into PostgreSQL and
  :func:`write_app_data_csv` writes one CSV per table, both with bounded memory.

CLI: ``python -m feedbackloop.synth {seed-corpus,app-data,app-data-csv} --help``.
"""

from __future__ import annotations

from feedbackloop.synth.appdata import (
    CHALLENGER_VERSION,
    CHAMPION_VERSION,
    MALFORMED_KINDS,
    TABLE_COLUMNS,
    TABLES,
    AppDataGenerator,
    AppItem,
    iter_app_data,
    load_app_data,
    write_app_data_csv,
)
from feedbackloop.synth.corpus import SeedCorpusError, seed_corpus, write_seed_corpus
from feedbackloop.synth.emails import (
    RenderedEmail,
    confusable_category,
    problem_areas_for,
    problem_variant_keys,
    render,
    render_email,
)

__all__ = [
    "CHALLENGER_VERSION",
    "CHAMPION_VERSION",
    "MALFORMED_KINDS",
    "TABLES",
    "TABLE_COLUMNS",
    "AppDataGenerator",
    "AppItem",
    "RenderedEmail",
    "SeedCorpusError",
    "confusable_category",
    "iter_app_data",
    "load_app_data",
    "problem_areas_for",
    "problem_variant_keys",
    "render",
    "render_email",
    "seed_corpus",
    "write_app_data_csv",
    "write_seed_corpus",
]
