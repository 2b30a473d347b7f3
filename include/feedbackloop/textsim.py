"""Near-duplicate detection on normalised text.

Used to keep the golden set out of every training set and the seed corpus disjoint from the
golden set. Text is normalised (Unicode NFKC, lower case, URLs / numbers / punctuation folded,
whitespace collapsed) and cut into word shingles; two texts are near-duplicates when the
containment of the candidate's shingles in a reference text, or their Jaccard similarity,
reaches the threshold. An inverted index over the reference shingles keeps a lookup to the
few references that share a shingle, so checking a million candidates against the golden
set stays cheap.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

_URL = re.compile(r"https?://\S+|www\.\S+")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)

DEFAULT_SHINGLE = 4
DEFAULT_THRESHOLD = 0.5
# Containment is only trusted for texts long enough that sharing them is not a coincidence.
MIN_CONTAINMENT_SHINGLES = 12


def normalize_text(text: str) -> str:
    """Fold a text to the form used for similarity: case, URLs, numbers, punctuation."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _URL.sub(" url ", text)
    text = _EMAIL.sub(" addr ", text)
    text = _NUMBER.sub(" 0 ", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def shingles(text: str, size: int = DEFAULT_SHINGLE) -> frozenset[str]:
    """Word n-gram shingles of the normalised text (the whole text if it is shorter)."""
    words = normalize_text(text).split()
    if len(words) <= size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass(frozen=True)
class Match:
    reference_id: str
    similarity: float


class NearDuplicateIndex:
    """Index of reference texts (e.g. the golden set) to test candidates against."""

    def __init__(
        self,
        references: Iterable[tuple[str, str]],
        threshold: float = DEFAULT_THRESHOLD,
        shingle_size: int = DEFAULT_SHINGLE,
    ):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.shingle_size = shingle_size
        self._sets: dict[str, frozenset[str]] = {}
        self._index: dict[str, list[str]] = defaultdict(list)
        for ref_id, text in references:
            sh = shingles(text, shingle_size)
            self._sets[ref_id] = sh
            for s in sh:
                self._index[s].append(ref_id)

    def __len__(self) -> int:
        return len(self._sets)

    def best_match(self, text: str) -> Match | None:
        """The most similar reference if it reaches the threshold, else None.

        Similarity is the larger of Jaccard and containment (the share of the smaller
        shingle set found in the other), so a golden email pasted inside a longer email,
        or trimmed, is still caught.
        """
        cand = shingles(text, self.shingle_size)
        if not cand:
            return None
        shared: dict[str, int] = defaultdict(int)
        for s in cand:
            for ref_id in self._index.get(s, ()):
                shared[ref_id] += 1
        best: Match | None = None
        for ref_id, inter in shared.items():
            ref = self._sets[ref_id]
            union = len(cand) + len(ref) - inter
            smaller = min(len(cand), len(ref))
            sim = inter / union
            if smaller >= MIN_CONTAINMENT_SHINGLES:
                sim = max(sim, inter / smaller)
            if sim >= self.threshold and (best is None or sim > best.similarity):
                best = Match(ref_id, sim)
        return best

    def contains(self, text: str) -> bool:
        return self.best_match(text) is not None
