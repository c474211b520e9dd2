"""Text normalisation of the POP part: the fast paths give the same strings as the plain definitions."""

from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path
from typing import Any

from analysis.plans.frame import _EMAIL_RE, _INSZ_RE, mask_personal
from analysis.plans.normalise import strip_accents


def _reference_strip(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def test_strip_accents_is_nfkd_without_combining_marks() -> None:
    assert strip_accents("Één café, naïef — coöperatie") == "Een cafe, naief — cooperatie"
    assert strip_accents("ﬁ ½ ß ø Æ") == "fi 1⁄2 ß ø Æ"  # compatibility forms decomposed; no mark, no change
    assert strip_accents("e\u0301 a\u0316\u0301 \u0344") == "e a "  # marks already decomposed, reordered, or all marks
    assert strip_accents("plain ascii") == "plain ascii"
    # the planes with combining marks and decomposable characters (BMP, SMP, CJK compatibility, tags)
    codes = [*range(0xD800), *range(0xE000, 0x20000), *range(0x2F800, 0x2FA20), *range(0xE0000, 0xE0080)]
    every = "".join(map(chr, codes))
    assert strip_accents(every) == _reference_strip(every)
    rng = random.Random(7)
    pool = "aeiouAEIOU .-\u0301\u0308\u0327\u0316éëèçñÅøßﬁ½한글\u1100\u1161"
    for _ in range(500):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        assert strip_accents(s) == _reference_strip(s), s


def test_strip_accents_matches_scikit_learn() -> None:
    from sklearn.feature_extraction.text import strip_accents_unicode

    for s in ("Opleiding verpleegkunde (HBO5) — één jaar", "graduaat in de boekhouding", "naïeve coöperatie ﬁnanciën"):
        assert strip_accents(s) == strip_accents_unicode(s)


#: the INSZ pattern as defined: 11 digits in groups, not inside a longer run of digits
_PLAIN_INSZ_RE = re.compile(r"(?<!\d)\d{2}[./\- ]?\d{2}[./\- ]?\d{2}[./\- ]?\d{3}[./\- ]?\d{2}(?!\d)")


def test_insz_pattern_matches_as_defined() -> None:
    cases = ["85.07.30-033.61", "x85073003361y", "185073003361", "8507300336", "85 07 30 033 61", "٨٥07300336١", "0" * 30, "85073003361",
             "85.07.30-033.6185.07.30-033.61", "1 85073003361 2", "a1 22 33 444 55b", "12/34/56-789/01 en 1234567890123 en 98765432109"]
    rng = random.Random(3)
    cases += ["".join(rng.choice("0123456789 ./-x") for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    for s in cases:
        assert [m.span() for m in _INSZ_RE.finditer(s)] == [m.span() for m in _PLAIN_INSZ_RE.finditer(s)], s


def test_mask_personal_skips_the_address_pattern_only_without_a_separator() -> None:
    def reference(text: str) -> str:
        return _PLAIN_INSZ_RE.sub("[INSZ]", _EMAIL_RE.sub("[e-mail]", text))

    texts = [
        "Contact: an.peeters@voorbeeld.be; rr 85.07.30-033.61.",
        "mail els [AT] werk.be of jan (at) vdab (dot) be",
        "els\tAt\thotmail.com en piet at home",
        "Geen adres, wel 85073003361 en 30/07/2023.",
        "Ik ga de opleiding boekhouding volgen — at",
        "",
    ]
    for t in texts:
        assert mask_personal(t) == reference(t), t
    assert mask_personal(texts[3]) == "Geen adres, wel [INSZ] en 30/07/2023."


def test_terms_are_scikit_learns_word_uni_and_bigrams() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from analysis.plans.classify import terms

    reference = TfidfVectorizer(ngram_range=(1, 2), strip_accents="unicode", lowercase=True).build_analyzer()
    docs = [
        "Ik wil de opleiding 'Bachelor in de Verpleegkunde' volgen — één jaar, naïef?",
        "PERSOONLIJK ONTWIKKELINGSPLAN\n\n1. Situatie\nEls werkt al 6 jaar als logistiek medewerker.",
        "a",
        "",
        "één",
        "x_y 12 3 ab-cd ÉCOLE coöperatie ﬁnanciën",
    ]
    for d in docs:
        assert terms(d) == reference(d), d
    assert terms("Opleiding Boekhouding volgen") == ["opleiding", "boekhouding", "volgen", "opleiding boekhouding", "boekhouding volgen"]


def test_pop_table_read_once_per_content(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import pandas as pd

    from analysis.plans import stage

    p = tmp_path / "texts.csv"
    pd.DataFrame({"trajectory_id": ["LBT00000001", "LBT00000002"], "text": ["Plan één.", "Plan twee."]}).to_csv(p, index=False)
    cfg: Any = SimpleNamespace(plans=SimpleNamespace(texts="texts.csv", id_column="trajectory_id", text_column="text"), path=lambda rel: tmp_path / rel, source=None)
    first = stage._read_texts(cfg)
    first.loc[0, "text"] = "changed by the caller"  # a copy: the next read is not affected
    again = stage._read_texts(cfg)
    assert again["text"].tolist() == ["Plan één.", "Plan twee."] and again.attrs["source"] == str(p)
    # same size, new content: read again
    pd.DataFrame({"trajectory_id": ["LBT00000001", "LBT00000002"], "text": ["Plan eeeen.", "Plan twee."]}).to_csv(p, index=False)
    assert stage._read_texts(cfg)["text"].tolist() == ["Plan eeeen.", "Plan twee."]
