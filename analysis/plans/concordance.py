"""Automated concordance on every POP: the POP's training, the attest's training and the training followed.

For each POP (not only the sample):

1. **Training sentences.** The text is split into sentences; a sentence names a training when it has a
   training keyword (``opleiding``, ``cursus``, ``bachelor``, ``graduaat`` ...) and no negation
   (``geen opleiding``, ``niet nodig`` ...).  ``auto_training`` says whether there is one.
2. **Names.** Sentences and training names are normalised (lower case, accents and punctuation removed,
   common abbreviations expanded, Dutch function words dropped) and compared with rapidfuzz's
   ``partial_ratio`` (0-100): ``score_attest`` against the attest's training name, ``score_followed``
   against the name of the training actually followed (the first approved POP-based DWSE application
   after the trajectory's start).
3. **Flags.** ``auto_attest_match`` is ``onbepaald`` without a training sentence, ``match`` when
   ``score_attest >= threshold``, else ``mismatch``; ``auto_followed_match`` likewise for the followed
   training (``geen_aanvraag`` without one).  ``attest_vs_followed`` compares the ids of the attest and
   of the followed training (the admin-level check, no text needed).

The flags err (typos, two trainings in one plan, vague mentions); :mod:`analysis.plans.estimates`
therefore never uses them alone for a published share, but combines them with the human-coded sample.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.plans.normalise import strip_accents

__all__ = ["DEFAULT_THRESHOLD", "concordance", "normalise_name", "validate_flags"]

DEFAULT_THRESHOLD = 85.0
_KEYWORDS = re.compile(
    r"\b(opleiding\w*|cursus\w*|bachelor\w*|ba|graduaat\w*|master\w*|postgraduaat|bijscholing|lerarenopleiding|richtgraad|rijbewijs|inschrijven|vorming)\b"
)
_NEGATION = re.compile(r"\b(geen opleiding|niet nodig|niet aan de orde|geen cursus|geen vorming)\b")
_STOP = {"in", "de", "het", "van", "voor", "een", "en", "bij", "met", "aan", "op", "te", "of", "opleiding", "la"}
_EXPAND = (
    (re.compile(r"\bba\b\.?"), "bachelor"),
    (re.compile(r"\beducatieve bachelor\b"), "lerarenopleiding"),
    (re.compile(r"\bgrad\b\.?"), "graduaat"),
)


_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# lines, then sentences; a full stop followed by a lower-case word is an abbreviation ("Ba. verpleegkunde")
_SENTENCE_BREAK = re.compile(r"[\n\r]+|(?<=[.!?;])\s+(?=[A-ZÀ-Ý0-9])")


def normalise_name(s: str) -> str:
    """Lower case, no accents or punctuation, abbreviations expanded, function words dropped."""
    return _normalise_lowered(strip_accents(str(s).lower()))


def _normalise_lowered(s: str) -> str:
    """:func:`normalise_name` of a text already in lower case without accents."""
    s = _NON_ALNUM.sub(" ", s)
    for pat, rep in _EXPAND:
        s = pat.sub(rep, s)
    return " ".join(w for w in s.split() if w not in _STOP)


def _sentences(text: str) -> list[str]:
    parts = _SENTENCE_BREAK.split(text)
    return [p for p in map(str.strip, parts) if p]


def _training_sentences(text: str) -> list[str]:
    out = []
    for s in _sentences(text):
        low = strip_accents(s.lower())
        if _NEGATION.search(low):
            continue
        if _KEYWORDS.search(low):
            out.append(_normalise_lowered(low))
    return out


def concordance(frame: pd.DataFrame, texts: pd.DataFrame, trainings: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Automated flags for every POP of the frame.

    Parameters
    ----------
    frame
        The POP frame (``pop_id``, ``attest_training_id``, ``followed_training_id``).
    texts
        ``pop_id``, ``text`` (masked or not; only used in memory).
    trainings
        The training catalogue: ``training_id``, ``training_name``.
    threshold
        Similarity (0-100) at or above which two names are the same training.

    Returns
    -------
    pd.DataFrame
        ``pop_id``, ``auto_training``, ``score_attest``, ``score_followed``, ``auto_attest_match``,
        ``auto_followed_match``, ``attest_vs_followed`` — no text.
    """
    from rapidfuzz import fuzz

    name_of = dict(zip(trainings["training_id"].astype(str), trainings["training_name"].astype(str), strict=False))
    normalised: dict[str, str] = {}  # training name -> normalise_name(name), once per name
    text_of = dict(zip(texts["pop_id"], texts["text"], strict=True))
    rows = []
    for r in frame.itertuples(index=False):
        sents = _training_sentences(text_of.get(r.pop_id, ""))
        att = name_of.get(str(r.attest_training_id)) if isinstance(r.attest_training_id, str) else None
        fol = name_of.get(str(r.followed_training_id)) if isinstance(r.followed_training_id, str) else None

        def score(name: str | None, sents: list[str] = sents) -> float:
            if name is None or not sents:
                return np.nan
            n = normalised.get(name)
            if n is None:
                n = normalised[name] = normalise_name(name)
            return float(max(fuzz.partial_ratio(n, s) for s in sents))

        sa, sf = score(att), score(fol)
        has = bool(sents)
        am = "onbepaald" if not has or att is None else ("match" if sa >= threshold else "mismatch")
        if fol is None:
            fm = "geen_aanvraag"
        elif not has:
            fm = "onbepaald"
        else:
            fm = "match" if sf >= threshold else "mismatch"
        if not isinstance(r.followed_training_id, str):
            avf = "geen_aanvraag"
        elif not isinstance(r.attest_training_id, str):
            avf = "geen_attest"
        else:
            avf = "zelfde" if r.attest_training_id == r.followed_training_id else "verschillend"
        rows.append(
            {
                "pop_id": r.pop_id,
                "auto_training": has,
                "score_attest": sa,
                "score_followed": sf,
                "auto_attest_match": am,
                "auto_followed_match": fm,
                "attest_vs_followed": avf,
            }
        )
    return pd.DataFrame(rows)


def validate_flags(auto: pd.DataFrame, codes: pd.DataFrame) -> pd.DataFrame:
    """Precision and recall of the automated flags against the reconciled human codes (the sample).

    Returns one row per flag: ``flag``, ``n``, ``tp``, ``fp``, ``fn``, ``tn``, ``precision``,
    ``recall``, ``accuracy``.
    """
    m = codes.merge(auto, on="pop_id", how="inner")
    pairs = {
        "mismatch": (m["attest_match"] == "mismatch", m["auto_attest_match"] == "mismatch"),
        "match": (m["attest_match"] == "match", m["auto_attest_match"] == "match"),
        "training_recommended": (m["training_recommended"] == "ja", m["auto_training"].astype(bool)),
    }
    rows = []
    for flag, (truth, pred) in pairs.items():
        t, p = truth.to_numpy(bool), pred.to_numpy(bool)
        tp, fp, fn, tn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum())
        rows.append(
            {
                "flag": flag,
                "n": len(m),
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "tn": tn,
                "precision": tp / (tp + fp) if tp + fp else np.nan,
                "recall": tp / (tp + fn) if tp + fn else np.nan,
                "accuracy": (tp + tn) / len(m) if len(m) else np.nan,
            }
        )
    return pd.DataFrame(rows)
