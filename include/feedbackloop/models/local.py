"""The ``local`` backend: a scikit-learn email classifier that trains and runs fully offline.

Model, in the order the text flows through it:

* **Views of the email.** The combined text (``From: ..\\nSubject: ..\\n\\nbody``, see
  :attr:`EmailInput.text`) is split back into sender, subject and body. Quoted replies and
  forwarded history are cut from the body, because the new part of a thread carries the
  signal and long quotes drown it. Three views are vectorised:
  word 1-2 gram TF-IDF over the whole text, char_wb 3-5 gram TF-IDF over its head (robust
  to typos, lookalike domains and non-English mail), and a separate word TF-IDF over
  a *header* view (sender domain parts + subject) so that who sent it and what it is called
  count for more than one line among a long body. All use sublinear tf; n-grams seen in a
  single training email are dropped once the corpus has :data:`MIN_ROWS_FOR_PRUNING` rows.
* **Category.** A linear SVM (squared hinge, one-vs-rest) fit with per-row
  ``sample_weight`` (the reward-derived ``weight`` column). Its margins become probabilities
  through a softmax with one temperature, fit on held-out margins by minimising weighted log
  loss: on the validation frame when it has enough rows, else on 3-fold cross-validated
  margins. Scaling never changes the argmax, so accuracy is the SVM's while the confidence
  is calibrated (ECE before and after is reported in the training statistics).
* **Actions.** One binary linear SVM per action, trained only on rows whose category allows
  that action, on the word and header features plus a one-hot of the category. At
  prediction time only the predicted category's allowed actions are scored; those with a
  positive margin are suggested, or the single best-scoring one if none is positive. The
  suggestion is therefore always a non-empty subset of the category's allowed actions.
  An action with fewer than two positive (or negative) training rows uses its weighted base
  rate instead (suggested when >= 0.5).

The artifact is a zlib-compressed pickle (protocol 5) of the fitted scikit-learn pipeline
plus the action models. Plain ``pickle`` rather than ``joblib.dump``: joblib's pure-Python
pickler spent longer on the ~10^5-entry vocabularies than training did. Loading a pickle
executes code, so artifacts must only ever come from this project's own staging.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from feedbackloop.models.base import (
    TRAIN_COLUMNS,
    EmailInput,
    Prediction,
    TrainedModel,
    build_spec,
)

if TYPE_CHECKING:
    import pandas as pd
    from scipy import sparse

    from feedbackloop.golden import Taxonomy

BASE_MODEL = "sklearn-tfidf-linearsvm"
ARTIFACT_FORMAT = 1
RANDOM_STATE = 0
# Inverse regularisation of the category and action SVMs: scikit-learn's default, the usual
# choice for L2-normalised TF-IDF.
CATEGORY_C = 1.0
ACTION_C = 1.0
PRIOR_THRESHOLD = 0.5
# Drop n-grams that occur in one training email only (they cannot generalise and double the
# vocabulary), but not on toy corpora where that could leave no vocabulary at all.
MIN_ROWS_FOR_PRUNING = 100
# Bounds of the temperature search; SVM margins are O(1), so the optimum is usually 0.05-1.
TEMPERATURE_BOUNDS = (1e-3, 100.0)
# Cap on the char n-gram vocabulary: keeps the artifact small; the most frequent n-grams
# carry nearly all the signal.
MAX_CHAR_FEATURES = 200_000
# Char n-grams are the expensive block, so they see only the head of the email (sender,
# subject and the start of the body, where what an email *is* gets said); words see more.
# Both caps bound the cost of pathological bodies (up to 1 MB pass validation).
MAX_CHAR_VIEW_CHARS = 1_500
MAX_WORD_VIEW_CHARS = 20_000
# Below this many validation rows the temperature is fit on cross-validated logits instead.
MIN_CALIBRATION_ROWS = 40
CV_CALIBRATION_FOLDS = 3

_QUOTE_START = re.compile(
    r"^(?:-{2,}\s*(?:original message|forwarded message)\s*-{2,}"
    r"|on .{0,200}\bwrote:\s*$"
    r"|le .{0,200}\ba écrit\s*:\s*$"
    r"|am .{0,200}\bschrieb .{0,100}:\s*$"
    r"|from: .+\bsent: )",
    re.IGNORECASE,
)
_EMAIL_ADDRESS = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


class LocalModelError(ValueError):
    """Bad training input or an artifact this backend cannot use."""


# --------------------------------------------------------------------------- text views


def split_email_text(text: str) -> tuple[str, str, str]:
    """Split ``From: ..\\nSubject: ..\\n\\nbody`` back into (sender, subject, body).

    Text that does not start with a ``From:`` header is treated as a bare body.
    """
    sender = subject = ""
    head, sep, body = text.partition("\n\n")
    if not sep or not head.startswith("From:"):
        return "", "", text
    for line in head.splitlines():
        if line.startswith("From:"):
            sender = line[len("From:") :].strip()
        elif line.startswith("Subject:"):
            subject = line[len("Subject:") :].strip()
    return sender, subject, body


def sender_domain(sender: str) -> str:
    """The domain of the sender's address, lower-cased (empty when there is none)."""
    match = _EMAIL_ADDRESS.search(sender)
    return match.group(1).lower() if match else ""


def strip_quoted(body: str) -> str:
    """Drop quoted (``>``) lines and everything after a reply / forward separator."""
    kept: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if _QUOTE_START.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line)
    new_part = "\n".join(kept).strip()
    # A message that is nothing but a forward keeps its quoted text: there is nothing else.
    return new_part if new_part else body


def _header_view(text: str) -> str:
    sender, subject, _ = split_email_text(text)
    domain = sender_domain(sender)
    # Domain parts as separate tokens ("paypal", "com") plus the whole domain as one token,
    # so both "a bank wrote" and "exactly this domain wrote" can be learnt.
    parts = " ".join(p for p in re.split(r"[.\-]", domain) if p)
    whole = "dom_" + re.sub(r"\W", "_", domain) if domain else "dom_none"
    return f"{whole} {parts} {subject}"


def _full_view(text: str) -> str:
    sender, subject, body = split_email_text(text)
    return f"{sender}\n{subject}\n{strip_quoted(body)}"[:MAX_WORD_VIEW_CHARS]


def header_views(texts: Iterable[str]) -> list[str]:
    """Header view (sender domain + subject) of each text; used inside the pipeline."""
    return [_header_view(t) for t in texts]


def full_views(texts: Iterable[str]) -> list[str]:
    """Whole-email view with quoted history removed; used inside the pipeline."""
    return [_full_view(t) for t in texts]


def head_views(texts: Iterable[str]) -> list[str]:
    """The first :data:`MAX_CHAR_VIEW_CHARS` of the whole-email view, for char n-grams."""
    return [_full_view(t)[:MAX_CHAR_VIEW_CHARS] for t in texts]


def _build_features(min_df: int = 1) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import FunctionTransformer

    def block(view: Any, vectorizer: Any) -> Any:
        return Pipeline([("view", FunctionTransformer(view, validate=False)), ("tfidf", vectorizer)])

    return FeatureUnion(
        [
            (
                "word",
                block(
                    full_views,
                    TfidfVectorizer(
                        ngram_range=(1, 2),
                        sublinear_tf=True,
                        strip_accents="unicode",
                        min_df=min_df,
                        dtype=np.float64,
                    ),
                ),
            ),
            (
                "char",
                block(
                    head_views,
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(3, 5),
                        sublinear_tf=True,
                        max_features=MAX_CHAR_FEATURES,
                        min_df=min_df,
                        dtype=np.float64,
                    ),
                ),
            ),
            (
                "header",
                block(
                    header_views,
                    TfidfVectorizer(
                        ngram_range=(1, 2),
                        sublinear_tf=True,
                        strip_accents="unicode",
                        token_pattern=r"(?u)\b\w+\b",
                        dtype=np.float64,
                    ),
                ),
            ),
        ]
    )


def _feature_blocks(features: Any, texts: Sequence[str], fit: bool = False) -> tuple[Any, Any]:
    """(all blocks for the category model, word + header blocks for the action models).

    Stacked in the FeatureUnion's own order, so the first matrix equals
    ``features.transform(texts)``; the char block is left out of the action models because
    it triples their cost and the action signal is in words ("overdue", "reschedule").
    """
    from scipy import sparse

    blocks = {}
    for name, transformer in features.transformer_list:
        blocks[name] = transformer.fit_transform(texts) if fit else transformer.transform(texts)
    x_all = sparse.hstack([blocks[name] for name, _ in features.transformer_list], format="csr")
    x_words = sparse.hstack([blocks["word"], blocks["header"]], format="csr")
    return x_all, x_words


# --------------------------------------------------------------------------- training


def _normalise_actions(value: Any) -> tuple[str, ...]:
    if value is None or isinstance(value, str):
        raise TypeError("actions must be a list of action ids")
    return tuple(str(a) for a in value)


def _check_frame(
    frame: pd.DataFrame, name: str, taxonomy: Taxonomy
) -> tuple[list[str], list[str], list[tuple[str, ...]], np.ndarray]:
    missing = [c for c in TRAIN_COLUMNS if c not in frame.columns]
    if missing:
        raise LocalModelError(f"{name} frame lacks column(s): {', '.join(missing)}")
    if len(frame) == 0:
        raise LocalModelError(f"{name} frame has no rows")
    texts = [t if isinstance(t, str) else "" for t in frame["text"].tolist()]
    bad_text = [i for i, t in enumerate(frame["text"].tolist()) if not isinstance(t, str) or not t.strip()]
    if bad_text:
        raise LocalModelError(f"{name} frame has empty or non-string text at row(s) {bad_text[:10]}")
    categories = [str(c) for c in frame["category"].tolist()]
    known = set(taxonomy.category_ids)
    unknown = sorted({c for c in categories if c not in known})
    if unknown:
        raise LocalModelError(f"{name} frame has categories outside the taxonomy: {', '.join(unknown)}")
    actions: list[tuple[str, ...]] = []
    for i, (cat, raw) in enumerate(zip(categories, frame["actions"].tolist(), strict=True)):
        try:
            acts = _normalise_actions(raw)
        except TypeError as exc:
            raise LocalModelError(f"{name} frame row {i}: {exc}, got {raw!r}") from exc
        allowed = set(taxonomy.category(cat).actions)
        bad = [a for a in acts if a not in allowed]
        if bad:
            raise LocalModelError(f"{name} frame row {i}: action(s) {bad} not allowed for category {cat!r}")
        actions.append(acts)
    weights = np.asarray(frame["weight"].to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        bad_rows = np.flatnonzero(~np.isfinite(weights) | (weights < 0))[:10].tolist()
        raise LocalModelError(f"{name} frame has negative or non-finite weight at row(s) {bad_rows}")
    if weights.sum() <= 0:
        raise LocalModelError(f"{name} frame has no row with a positive weight")
    return texts, categories, actions, weights


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _logits(model: Any, x: Any) -> np.ndarray:
    scores = np.asarray(model.decision_function(x), dtype=np.float64)
    if scores.ndim == 1:  # binary problem: sklearn returns one column for the positive class
        scores = np.column_stack([-scores / 2, scores / 2])
    return scores


def _fit_temperature(logits: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Temperature minimising the weighted negative log-likelihood of ``y``."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = _softmax(logits / math.exp(log_t))
        picked = np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)
        return float(-(weights * np.log(picked)).sum() / weights.sum())

    low, high = TEMPERATURE_BOUNDS
    result = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded")
    return float(math.exp(result.x))


def _category_model() -> Any:
    from sklearn.svm import LinearSVC

    # A linear SVM (liblinear's dual coordinate descent) fits 20 classes over ~10^5 sparse
    # features in seconds, where multinomial L-BFGS logistic regression took 10-20x longer
    # at equal accuracy; its margins become probabilities through the temperature. tol=1e-3
    # saves a third of the iterations and changed no prediction on the seed corpus.
    return LinearSVC(C=CATEGORY_C, tol=1e-3, max_iter=5000, random_state=RANDOM_STATE)


def _action_features(x: Any, categories: Sequence[str], category_index: dict[str, int]) -> sparse.csr_matrix:
    from scipy import sparse

    rows = np.arange(len(categories))
    cols = np.array([category_index[c] for c in categories], dtype=np.int64)
    onehot = sparse.csr_matrix(
        (np.ones(len(categories)), (rows, cols)), shape=(len(categories), len(category_index))
    )
    return sparse.hstack([x, onehot], format="csr")


class LocalTrainer:
    """Trains the ``local`` backend (implements :class:`~feedbackloop.models.base.Trainer`).

    Args:
        taxonomy: The category/action taxonomy; training labels must belong to it.
    """

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy

    def train(
        self, train: pd.DataFrame, validation: pd.DataFrame | None, spec_base: dict[str, Any]
    ) -> TrainedModel:
        """Fit the model on ``train`` and report metrics on ``validation``.

        Args:
            train: Columns ``text``, ``category``, ``actions`` (list of action ids) and
                ``weight`` (non-negative sample weight). Extra columns are ignored.
            validation: Same columns, or None. Fits the temperature (when it has at least
                :data:`MIN_CALIBRATION_ROWS` rows of trained categories) and is scored for the
                reported statistics; never used to fit the SVMs.
            spec_base: Run-level spec fields (``version_id``, ``created_at``, optional
                ``provenance`` / ``artifact_uri``), see :func:`build_spec`.

        Returns:
            The spec (training statistics under ``provenance["training"]``) and the
            artifact bytes (zlib-compressed pickle), identical for identical inputs.

        Raises:
            LocalModelError: Missing columns, no rows, labels outside the taxonomy, actions not
                allowed for their category, negative weights, or fewer than two categories.
        """
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import Pipeline

        texts, categories, actions, weights = _check_frame(train, "train", self.taxonomy)
        checked_validation = (
            _check_frame(validation, "validation", self.taxonomy) if validation is not None else None
        )
        classes = [c for c in self.taxonomy.category_ids if c in set(categories)]
        if len(classes) < 2:
            raise LocalModelError(f"train frame needs at least two categories, got {classes}")
        class_index = {c: i for i, c in enumerate(classes)}
        y = np.array([class_index[c] for c in categories], dtype=np.int64)
        counts = np.bincount(y, minlength=len(classes))

        features = _build_features(min_df=2 if len(texts) >= MIN_ROWS_FOR_PRUNING else 1)
        x, x_words = _feature_blocks(features, texts, fit=True)
        category_index = {c: i for i, c in enumerate(self.taxonomy.category_ids)}
        xa = _action_features(x_words, categories, category_index)

        # The temperature is fit on held-out margins, never on the training rows' own (which
        # are overconfident by construction): the validation frame when it has enough rows
        # of trained categories, else K-fold margins over the training rows (the vocabulary
        # is shared across folds: slightly optimistic, far less than in-sample margins).
        v_known = (
            np.array([c in class_index for c in checked_validation[1]])
            if checked_validation
            else np.zeros(0, bool)
        )
        use_validation = int(v_known.sum()) >= MIN_CALIBRATION_ROWS
        n_folds = 0 if use_validation else int(min(CV_CALIBRATION_FOLDS, counts.min()))
        folds = (
            list(StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=RANDOM_STATE).split(x, y))
            if n_folds >= 2
            else []
        )

        # Every linear model is independent of the others; they are fit in one go below.
        jobs: list[tuple[str, Any, Any, np.ndarray, np.ndarray]] = [
            ("category", _category_model(), x, y, weights)
        ]
        for k, (fit_idx, _) in enumerate(folds):
            jobs.append((f"fold{k}", _category_model(), x[fit_idx], y[fit_idx], weights[fit_idx]))
        action_models, action_jobs = self._action_jobs(xa, categories, actions, weights)
        jobs.extend(action_jobs)
        fitted = _fit_all(jobs)
        category_model = fitted["category"]
        for name, model in fitted.items():
            if name.startswith("action:"):
                action_models[name.removeprefix("action:")] = ("model", model)
        action_models = {a: action_models[a] for a in self.taxonomy.actions if a in action_models}

        stats: dict[str, Any] = {
            "n_train": len(texts),
            "train_weight_sum": round(float(weights.sum()), 6),
            "train_class_counts": {c: int(counts[i]) for i, c in enumerate(classes)},
            "n_features": int(x.shape[1]),
            "category_C": CATEGORY_C,
            "action_C": ACTION_C,
            "random_state": RANDOM_STATE,
            "train_accuracy": round(float((category_model.predict(x) == y).mean()), 6),
            "action_models": sum(1 for kind, _ in action_models.values() if kind == "model"),
            "action_priors": sum(1 for kind, _ in action_models.values() if kind == "prior"),
        }

        validation_logits = None
        if checked_validation is not None:
            xv, xv_words = _feature_blocks(features, checked_validation[0])
            validation_logits = _logits(category_model, xv)
        if use_validation and checked_validation is not None and validation_logits is not None:
            v_y = np.array([class_index[c] for c, k in zip(checked_validation[1], v_known, strict=True) if k])
            temperature = _fit_temperature(validation_logits[v_known], v_y, checked_validation[3][v_known])
            stats.update(calibration="validation", calibration_rows=int(v_known.sum()))
        elif folds:
            oof = np.zeros((len(y), len(classes)))
            for k, (_, held_idx) in enumerate(folds):
                oof[held_idx] = _logits(fitted[f"fold{k}"], x[held_idx])
            temperature = _fit_temperature(oof, y, weights)
            oof_correct = oof.argmax(axis=1) == y
            stats.update(
                calibration=f"cross_validation_{len(folds)}_fold",
                calibration_rows=len(y),
                cv_accuracy=round(float(oof_correct.mean()), 6),
                cv_ece_uncalibrated=round(_ece(_softmax(oof).max(axis=1), oof_correct), 6),
                cv_ece=round(_ece(_softmax(oof / temperature).max(axis=1), oof_correct), 6),
            )
        else:
            temperature = 1.0
            stats["calibration"] = "none: a category has fewer than 2 training rows"
        stats["temperature"] = round(temperature, 6)

        pipeline = Pipeline([("features", features), ("classifier", category_model)])
        artifact_obj = {
            "format": ARTIFACT_FORMAT,
            "classes": classes,
            "pipeline": pipeline,
            "temperature": temperature,
            "action_models": action_models,
            "category_index": category_index,
            "taxonomy_version": self.taxonomy.version,
        }
        artifact = _dump(artifact_obj)
        stats["artifact_sha256"] = hashlib.sha256(artifact).hexdigest()
        stats["artifact_bytes"] = len(artifact)

        if checked_validation is not None and validation_logits is not None:
            from feedbackloop.evaluation import action_scores

            v_texts, v_categories, v_actions, v_weights = checked_validation
            classifier = LocalClassifier(artifact_obj, self.taxonomy)
            scores = classifier._score_features(xv, xv_words)
            correct = np.array([s[0] == c for s, c in zip(scores, v_categories, strict=True)])
            raw_probs = _softmax(validation_logits)
            stats["validation"] = {
                "n": len(v_texts),
                "accuracy": round(float(correct.mean()), 6),
                "weighted_accuracy": round(float(np.dot(v_weights / v_weights.sum(), correct)), 6),
                "ece_uncalibrated": round(_ece(raw_probs.max(axis=1), correct), 6),
                "ece": round(_ece(np.array([s[1] for s in scores]), correct), 6),
                "action_f1": round(action_scores(v_actions, [s[2] for s in scores])["f1"], 6),
                # Rows of a category absent from training can never be right; they count in
                # the accuracy but cannot inform the temperature.
                "unseen_category_rows": sum(c not in class_index for c in v_categories),
            }

        spec = build_spec(spec_base, backend="local", base_model=BASE_MODEL, training_stats=stats)
        return TrainedModel(spec=spec, artifact=artifact)

    def _action_jobs(
        self, xa: Any, categories: list[str], actions: list[tuple[str, ...]], weights: np.ndarray
    ) -> tuple[dict[str, tuple[str, Any]], list[tuple[str, Any, Any, np.ndarray, np.ndarray]]]:
        """Base-rate actions, and one binary fit job per learnable action.

        Each action is learnt from the rows whose category allows it.
        """
        from sklearn.svm import LinearSVC

        priors: dict[str, tuple[str, Any]] = {}
        jobs: list[tuple[str, Any, Any, np.ndarray, np.ndarray]] = []
        for action in self.taxonomy.actions:
            rows = np.array(
                [i for i, c in enumerate(categories) if action in self.taxonomy.category(c).actions],
                dtype=np.int64,
            )
            if len(rows) == 0:
                continue
            labels = np.array([action in actions[i] for i in rows], dtype=np.int64)
            w = weights[rows]
            if min(int(labels.sum()), int(len(labels) - labels.sum())) < 2:
                # Too few examples of one side to learn from text: use the weighted base rate.
                total = float(w.sum())
                priors[action] = ("prior", float(w[labels == 1].sum()) / total if total > 0 else 0.0)
                continue
            model = LinearSVC(C=ACTION_C, max_iter=5000, random_state=RANDOM_STATE)
            jobs.append((f"action:{action}", model, xa[rows], labels, w))
        return priors, jobs


def _fit_all(jobs: Sequence[tuple[str, Any, Any, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Fit ``(name, estimator, X, y, sample_weight)`` jobs, in order.

    Sequential on purpose: liblinear draws from one process-global random generator, so
    fitting in threads (it releases the GIL) made the models, and the artifact bytes,
    depend on thread scheduling.
    """
    return {name: model.fit(x, y, sample_weight=w) for name, model, x, y, w in jobs}


def _ece(confidences: np.ndarray, correct: np.ndarray) -> float:
    from feedbackloop.evaluation import expected_calibration_error

    return float(
        expected_calibration_error(np.asarray(confidences).tolist(), np.asarray(correct).tolist())["ece"]
    )


def _dump(obj: dict[str, Any]) -> bytes:
    # Fitted TfidfVectorizers keep ``stop_words_``, a *set* of pruned terms whose pickled
    # order depends on the per-process string hash seed. It is documented as introspection
    # only and safe to drop, and dropping it makes the artifact bytes reproducible.
    # Likewise ``_stop_words_id`` caches ``id(stop_words)``, a memory address: a pure cache,
    # recomputed on first use after loading.
    for step in obj["pipeline"].named_steps["features"].transformer_list:
        vectorizer = step[1].named_steps["tfidf"]
        if hasattr(vectorizer, "stop_words_"):
            vectorizer.stop_words_ = None
        if hasattr(vectorizer, "_stop_words_id"):
            del vectorizer._stop_words_id
    # Level 1: a third of level 6's time for a 4 % larger artifact.
    return zlib.compress(pickle.dumps(obj, protocol=5), 1)


def _load(data: bytes) -> Any:
    try:
        return pickle.loads(zlib.decompress(data))
    except Exception as exc:  # zlib.error, UnpicklingError, EOFError, ... for corrupt input
        raise LocalModelError(f"cannot load local model artifact: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- inference


class LocalClassifier:
    """Classifier over a trained local artifact (implements ``Classifier``).

    Latency: emails are scored in chunks of ``batch_size``; each email's ``latency_ms`` is
    the chunk's wall time divided by its size (amortised). With the default ``batch_size``
    of 1 it is the true per-email latency, which is what serving one email at a time costs.

    Args:
        artifact: The unpickled artifact dict (use :meth:`from_bytes` for bytes).
        taxonomy: The taxonomy predictions are checked against.
        batch_size: Emails scored per vectoriser call.
    """

    def __init__(self, artifact: dict[str, Any], taxonomy: Taxonomy, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not isinstance(artifact, dict) or artifact.get("format") != ARTIFACT_FORMAT:
            raise LocalModelError(f"not a local model artifact of format {ARTIFACT_FORMAT}")
        unknown = sorted(set(artifact["classes"]) - set(taxonomy.category_ids))
        if unknown:
            raise LocalModelError(
                f"artifact predicts categories missing from the taxonomy: {', '.join(unknown)}"
            )
        self._artifact = artifact
        self._classes: list[str] = list(artifact["classes"])
        self._pipeline = artifact["pipeline"]
        self._temperature = float(artifact["temperature"])
        self._action_models: dict[str, Any] = artifact["action_models"]
        self._category_index: dict[str, int] = artifact["category_index"]
        self.taxonomy = taxonomy
        self.batch_size = batch_size

    @classmethod
    def from_bytes(cls, data: bytes, taxonomy: Taxonomy, batch_size: int = 1) -> LocalClassifier:
        """Load an artifact written by :class:`LocalTrainer` (trusted bytes only: it is a pickle)."""
        return cls(_load(data), taxonomy, batch_size=batch_size)

    @property
    def classes(self) -> tuple[str, ...]:
        """Categories the model can predict, in taxonomy order."""
        return tuple(self._classes)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated category probabilities, one row per text, columns in :attr:`classes` order."""
        x, _ = _feature_blocks(self._pipeline.named_steps["features"], list(texts))
        return _softmax(_logits(self._pipeline.named_steps["classifier"], x) / self._temperature)

    def classify(self, emails: Sequence[EmailInput]) -> list[Prediction]:
        """One prediction per email, in input order."""
        predictions: list[Prediction] = []
        for start in range(0, len(emails), self.batch_size):
            chunk = emails[start : start + self.batch_size]
            began = time.perf_counter()
            scored = self._score_texts([e.text for e in chunk])
            elapsed_ms = (time.perf_counter() - began) * 1000.0 / len(chunk)
            for email, (category, confidence, actions) in zip(chunk, scored, strict=True):
                predictions.append(
                    Prediction(
                        email_id=email.email_id,
                        category=category,
                        confidence=confidence,
                        actions=actions,
                        latency_ms=elapsed_ms,
                    )
                )
        return predictions

    def _score_texts(self, texts: Sequence[str]) -> list[tuple[str, float, tuple[str, ...]]]:
        """(category, confidence, actions) per text."""
        if not texts:
            return []
        return self._score_features(*_feature_blocks(self._pipeline.named_steps["features"], list(texts)))

    def _score_features(self, x: Any, x_words: Any) -> list[tuple[str, float, tuple[str, ...]]]:
        """(category, confidence, actions) per row of already vectorised text."""
        probs = _softmax(_logits(self._pipeline.named_steps["classifier"], x) / self._temperature)
        top = probs.argmax(axis=1)
        categories = [self._classes[i] for i in top]
        xa = _action_features(x_words, categories, self._category_index)
        scores = self._action_scores(xa, categories)
        return [
            (category, float(probs[row, top[row]]), self._suggest_actions(scores, row, category))
            for row, category in enumerate(categories)
        ]

    def _action_scores(self, xa: Any, categories: Sequence[str]) -> dict[str, np.ndarray]:
        """Per action a score per row; positive means "suggest".

        Model actions score with their SVM margin, base-rate actions with ``rate - 0.5``.
        Only actions allowed for at least one predicted category are computed.
        """
        needed = {a for c in set(categories) for a in self.taxonomy.category(c).actions}
        scores: dict[str, np.ndarray] = {}
        for action in sorted(needed):
            entry = self._action_models.get(action)
            if entry is None:  # never seen in training: rank below every known action
                scores[action] = np.full(len(categories), -np.inf)
            elif entry[0] == "prior":
                scores[action] = np.full(len(categories), float(entry[1]) - PRIOR_THRESHOLD)
            else:
                scores[action] = np.asarray(entry[1].decision_function(xa), dtype=np.float64)
        return scores

    def _suggest_actions(self, scores: dict[str, np.ndarray], row: int, category: str) -> tuple[str, ...]:
        allowed = self.taxonomy.category(category).actions
        chosen = tuple(a for a in allowed if scores[a][row] > 0)
        if chosen:
            return chosen
        # Nothing is positive: suggest the best-scoring action; taxonomy order breaks ties
        # (the first listed action is the category's primary one).
        best = max(range(len(allowed)), key=lambda k: (scores[allowed[k]][row], -k))
        return (allowed[best],)


# --------------------------------------------------------------------------- seed corpus


def seed_corpus_frame(path: Path | str | None = None, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """Load ``golden_set/seed_corpus.jsonl`` as a training frame with weight 1.0.

    Args:
        path: The JSONL file (default: ``seed_corpus.jsonl`` in the golden-set folder). Each
            line has ``id``, ``sender``, ``subject``, ``body``, ``category`` and ``actions``.
        taxonomy: When given, categories and actions are checked against it.

    Returns:
        Columns ``email_id``, ``text`` (the :attr:`EmailInput.text` layout), ``category``,
        ``actions`` (list) and ``weight`` (1.0), in file order.

    Raises:
        LocalModelError: The file is missing, a line is not a JSON object with those fields,
            an id repeats, or a label is outside the taxonomy; the message names the line.
    """
    import pandas as pd

    from feedbackloop.paths import golden_dir

    path = Path(path) if path is not None else golden_dir() / "seed_corpus.jsonl"
    if not path.exists():
        raise LocalModelError(f"seed corpus not found: {path}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LocalModelError(f"{where}: not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise LocalModelError(f"{where}: must be a JSON object")
        for name in ("id", "sender", "subject", "body", "category"):
            if not isinstance(record.get(name), str) or not record[name].strip():
                raise LocalModelError(f"{where}: field {name!r} must be a non-empty string")
        acts = record.get("actions")
        if not isinstance(acts, list) or not all(isinstance(a, str) for a in acts):
            raise LocalModelError(f"{where}: field 'actions' must be a list of strings")
        if record["id"] in seen:
            raise LocalModelError(f"{where}: duplicate id {record['id']!r}")
        seen.add(record["id"])
        if taxonomy is not None:
            if record["category"] not in taxonomy.category_ids:
                raise LocalModelError(f"{where}: unknown category {record['category']!r}")
            bad = [a for a in acts if a not in taxonomy.category(record["category"]).actions]
            if bad:
                raise LocalModelError(f"{where}: action(s) {bad} not allowed for {record['category']!r}")
        email = EmailInput(record["id"], record["sender"], record["subject"], record["body"])
        rows.append(
            {
                "email_id": email.email_id,
                "text": email.text,
                "category": record["category"],
                "actions": list(acts),
                "weight": 1.0,
            }
        )
    if not rows:
        raise LocalModelError(f"{path.name}: holds no emails")
    return pd.DataFrame(rows, columns=["email_id", "text", "category", "actions", "weight"])
