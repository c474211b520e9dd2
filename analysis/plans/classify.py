"""A text classifier for the career goals, trained on the coded sample — an aid, never a replacement.

For each goal a scikit-learn pipeline (TF-IDF of word uni- and bigrams, accents stripped, then a
logistic regression) is trained on the reconciled human codes of the sample.  Its predicted
probabilities feed the combined estimator (:func:`analysis.plans.estimates.combined_estimate`):

* **Cross-fitting.** The sample is split into ``folds`` random folds (within strata); the model of
  fold ``k`` is trained on the other folds.  A sampled POP's prediction comes from the model that did
  not see it; every POP of the population gets the mean prediction of the fold models.  The
  correction term of the combined estimator therefore uses out-of-sample predictions, which keeps it
  (approximately) unbiased and its variance honest, as in cross-fit prediction-powered inference.

The published goal shares remain the design-based estimates from the human codes; the combined
estimates are reported beside them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from analysis.plans.codebook import GOALS

__all__ = ["TextFeatures", "goal_predictions", "terms", "text_features"]


@dataclass(frozen=True)
class TextFeatures:
    """The TF-IDF matrix of every POP of the frame (one row per ``ids`` entry, in that order)."""

    ids: pd.Index
    matrix: Any


def text_features(texts: pd.DataFrame, frame_ids: pd.Series) -> TextFeatures:
    """TF-IDF of word uni- and bigrams of every POP of the frame; unsupervised (no code is used).

    Parameters
    ----------
    texts
        ``pop_id``, ``text`` (masked) for every POP of the frame.
    frame_ids
        The frame's ``pop_id`` values (the rows of the matrix, in this order).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    text_of = texts.set_index("pop_id")["text"]
    ids = pd.Index(frame_ids.astype(str))
    vec = TfidfVectorizer(analyzer=terms, sublinear_tf=True, min_df=2)
    return TextFeatures(ids=ids, matrix=vec.fit_transform(text_of.reindex(ids).fillna("").to_numpy()))


#: scikit-learn's default token: two or more word characters
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def terms(doc: str) -> list[str]:
    """The words and then the word pairs of ``doc``, lower case without accents.

    What scikit-learn's word analyzer gives with ``ngram_range=(1, 2)``, ``lowercase=True``,
    ``strip_accents="unicode"`` and its default token pattern (same terms, same order), in fewer
    Python steps per word.
    """
    from analysis.plans.normalise import strip_accents

    words = _TOKEN.findall(strip_accents(doc.lower()))
    return words + [f"{a} {b}" for a, b in pairwise(words)]


def goal_predictions(
    sample_codes: pd.DataFrame,
    texts: pd.DataFrame,
    frame_ids: pd.Series,
    *,
    folds: int = 5,
    seed: int = 2023,
    features: TextFeatures | None = None,
) -> dict[str, tuple[pd.Series, pd.Series]]:
    """Cross-fitted goal probabilities.

    Parameters
    ----------
    sample_codes
        Reconciled codes of the sample (``pop_id``, ``stratum`` and the goal codes).
    texts
        ``pop_id``, ``text`` (masked) for every POP of the frame.
    frame_ids
        The frame's ``pop_id`` values.
    folds
        Number of cross-fitting folds.
    features
        :func:`text_features` of ``texts`` and ``frame_ids``, when already computed (they do not
        depend on the sample: repeated samples of one frame share them).

    Returns
    -------
    dict
        goal -> (population predictions indexed by ``pop_id`` (mean over fold models), sample
        predictions indexed by ``pop_id`` (from the model that did not see the POP)).
    """
    from sklearn.linear_model import LogisticRegression

    if features is None:
        features = text_features(texts, frame_ids)
    ids, X_all = features.ids, features.matrix
    if not ids.equals(pd.Index(frame_ids.astype(str))):
        raise ValueError("features were computed for another frame (their pop_id values differ from frame_ids)")
    s = sample_codes.reset_index(drop=True)
    rng = np.random.default_rng([seed, 61])
    fold = np.empty(len(s), dtype=int)
    for _, idx in s.groupby("stratum").indices.items():
        perm = rng.permutation(idx)
        fold[perm] = np.arange(len(perm)) % folds
    pos = ids.get_indexer(pd.Index(s["pop_id"].astype(str)))
    out: dict[str, tuple[pd.Series, pd.Series]] = {}
    for g in GOALS:
        y = (s[g] == "ja").to_numpy().astype(int)
        pred_all = np.zeros(len(ids))
        pred_s = np.zeros(len(s))
        for k in range(folds):
            train = fold != k
            if len(np.unique(y[train])) < 2:
                p_const = float(y[train].mean())
                pred_all += p_const / folds
                pred_s[fold == k] = p_const
                continue
            model = LogisticRegression(C=4.0, max_iter=1000)
            model.fit(X_all[pos[train]], y[train])
            pred_all += model.predict_proba(X_all)[:, 1] / folds
            pred_s[fold == k] = model.predict_proba(X_all[pos[fold == k]])[:, 1]
        out[g] = (pd.Series(pred_all, index=ids, name=g), pd.Series(pred_s, index=s["pop_id"].astype(str).to_numpy(), name=g))
    return out
