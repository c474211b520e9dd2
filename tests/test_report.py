"""The evaluation report: rendered for real (HTML, PDF, DOCX) from a demo results bundle.

The bundle is computed by :mod:`tests.report_fixture` from a small synthetic study.  The renders use
whatever engine ``popeval report`` would use (Quarto when on PATH, else jupytext + nbclient + pandoc +
typst).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from report_fixture import make_demo_bundle

from analysis.bundle import read_bundle
from analysis.formatting import MISSING, SUPPRESSED, fmt_int, fmt_pct, fmt_signed
from analysis.render import parse_param, render_report
from analysis.report import COUNT_HEADERS, TEXT, t
from analysis.reporting import Report, protect, threshold_from_manifest
from survey.errors import ConfigError

HEADINGS = ("h_findings", "h_population", "h_survey", "h_flow", "h_margins", "h_weights", "h_comparison", "h_balance", "h_effects", "h_shifts", "h_sensitivity", "h_methods", "h_provenance")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_bundle(tmp_path_factory.mktemp("report") / "bundle")


@pytest.fixture(scope="module")
def rendered(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("rendered")
    nl = render_report(bundle_dir, lang="nl", out=out, formats=("html", "pdf", "docx"))
    en = render_report(bundle_dir, lang="en", out=out, formats=("html", "pdf", "docx"))
    return {"nl": dict(nl.outputs), "en": dict(en.outputs)}


def _norm(text: str) -> str:
    """Collapse every kind of space (including non-breaking) to one space."""
    return re.sub(r"[\s\u00a0\u202f]+", " ", text.replace("&nbsp;", " "))


class _Tables(HTMLParser):
    """Every <table> of an HTML page as a list of rows (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(_norm("".join(self._cell)).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _count_cells(html: str, lang: str) -> list[str]:
    parser = _Tables()
    parser.feed(html)
    cells = []
    for table in parser.tables:
        header, *rows = table
        cols = [i for i, h in enumerate(header) if h in COUNT_HEADERS[lang]]
        cells += [row[i] for row in rows for i in cols if i < len(row)]
    return cells


def _pdftotext(path: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------------------- rendering
def test_outputs_exist(rendered: dict[str, dict[str, Path]]) -> None:
    for lang, files in rendered.items():
        for fmt, path in files.items():
            assert path.is_file(), (lang, fmt)
            assert path.stat().st_size > 10_000, (lang, fmt, path.stat().st_size)
    for lang in ("nl", "en"):
        assert rendered[lang]["pdf"].read_bytes().startswith(b"%PDF")
        with zipfile.ZipFile(rendered[lang]["docx"]) as z:
            doc = z.read("word/document.xml").decode("utf-8")
            media = [n for n in z.namelist() if n.startswith("word/media/")]
        assert t("h_findings", lang) in doc
        assert t("h_provenance", lang) in doc
        assert len(media) >= 4  # the figures are embedded


def test_html_is_self_contained(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    for lang in ("nl", "en"):
        html = rendered[lang]["html"].read_text(encoding="utf-8")
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.I), lang
        assert not re.search(r"<script[^>]*\bsrc=", html, flags=re.I)
        assert not re.search(r"<link[^>]*stylesheet", html, flags=re.I)
        assert not re.search(r"@import", html)
        imgs = re.findall(r"<img[^>]*\bsrc=\"([^\"]*)\"", html)
        assert len(imgs) >= 4
        assert all(src.startswith("data:image/png;base64,") for src in imgs)
        assert str(bundle_dir.parent) not in html  # no local paths leak into the report


def _key_numbers(bundle_dir: Path, lang: str) -> list[str]:
    b = read_bundle(bundle_dir)
    share = b.table("pop_share").set_index("incentive")
    flow = b.table("response_flow").set_index("step")
    eff = b.table("effects")
    main = eff[(eff["method"] == "matching") & (eff["scale"] == "likert") & (eff["outcome"] == "stronger")].iloc[0]
    return [
        fmt_pct(share.at["OC", "pct_pop"], 1, lang),
        fmt_int(share.at["VOV", "n_approved"], lang),
        fmt_int(flow.at["invited", "n"], lang),
        fmt_signed(main["estimate"], 2, lang),
    ]


def test_key_numbers_in_html_and_pdf(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    nl = _key_numbers(bundle_dir, "nl")
    assert "," in nl[0] and "." in nl[1]  # Belgian: decimal comma, thousands point
    for lang in ("nl", "en"):
        html = _norm(rendered[lang]["html"].read_text(encoding="utf-8"))
        for number in _key_numbers(bundle_dir, lang):
            assert _norm(number) in html, (lang, number)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed")
    for lang in ("nl", "en"):
        text = _norm(_pdftotext(rendered[lang]["pdf"]))
        for number in _key_numbers(bundle_dir, lang):
            assert _norm(number) in text, (lang, number)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_section_is_there(rendered: dict[str, dict[str, Path]], lang: str) -> None:
    html = _norm(rendered[lang]["html"].read_text(encoding="utf-8"))
    for key in HEADINGS:
        assert _norm(t(key, lang)).replace("'", "&#39;") in html.replace("’", "'") or _norm(t(key, lang)) in html, (lang, key)
    assert t("title", lang) in html
    if shutil.which("pdftotext") is not None:
        text = _norm(_pdftotext(rendered[lang]["pdf"]))
        for key in HEADINGS:
            assert _norm(t(key, lang)) in text, (lang, key)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_no_small_counts_in_html_tables(rendered: dict[str, dict[str, Path]], lang: str) -> None:
    html = rendered[lang]["html"].read_text(encoding="utf-8")
    cells = _count_cells(html, lang)
    assert len(cells) > 50
    suppressed = 0
    for cell in cells:
        if cell in (SUPPRESSED, MISSING, ""):
            suppressed += cell == SUPPRESSED
            continue
        value = int(cell.replace(".", "").replace(",", "").replace(" ", ""))
        assert value == 0 or value >= 5, f"count {cell} below the threshold in the {lang} HTML"
    assert suppressed >= 2  # the demo has a small cell, suppressed with its complement


def test_no_small_counts_in_pdf(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed")
    text = _pdftotext(rendered["nl"]["pdf"], "-layout")
    prof = read_bundle(bundle_dir).table("profile")
    # the pipeline's population profile suppresses small cells before they reach the bundle
    small = prof[prof["n"].isna()]
    assert len(small)  # the demo bundle has a suppressed cell
    assert not ((prof["n"] > 0) & (prof["n"] < 5)).any()
    from analysis.report import category_label

    for _, row in small.iterrows():
        label = category_label(row["variable"], row["category"], "nl")
        lines = [ln for ln in text.splitlines() if ln.strip().startswith(label) or f"  {label}  " in ln]
        assert lines, label
        for ln in lines:
            tokens = ln.replace(label, " ").split()
            assert SUPPRESSED in tokens, ln


# ---------------------------------------------------------------------------- disclosure control
def test_protect_primary_secondary_and_percentages() -> None:
    df = pd.DataFrame({"variable": ["a", "a", "a", "b", "b"], "n": [3, 40, 50, 20, 30], "pct": [3.2, 43.0, 53.8, 40.0, 60.0]})
    p = protect(df, ["n"], 5, by=["variable"], derived={"n": ["pct"]})
    assert p.suppressed["n"].tolist() == [True, True, False, False, False]
    assert p.suppressed["pct"].tolist() == [True, True, False, False, False]
    p10 = protect(df, ["n"], 10, by=["variable"], derived={"n": ["pct"]})
    assert p10.suppressed["n"].sum() >= 2
    p2 = protect(df, ["n"], 2, by=["variable"])
    assert p2.n_suppressed == 0


def test_protect_complement() -> None:
    df = pd.DataFrame({"g": ["a", "a"], "part": [30, 50], "total": [32, 200]})
    p = protect(df, ["part", "total"], 5, by=["g"], complements=[("part", "total")])
    assert p.suppressed.at[0, "part"]  # total - part = 2 would disclose a small group
    assert p.suppressed.at[1, "part"]  # secondary within the block


def test_threshold_from_manifest() -> None:
    assert threshold_from_manifest({}) == 5
    assert threshold_from_manifest({"config": {"disclosure": {"threshold": 10}}}) == 10
    assert threshold_from_manifest({"config": {"disclosure": {"threshold": 10}}}, 3) == 3
    with pytest.raises(ConfigError):
        threshold_from_manifest({}, 0)


def test_threshold_parameter_suppresses_more(bundle_dir: Path, tmp_path: Path) -> None:
    md5 = "\n".join(Report(bundle_dir, "nl", figdir=tmp_path).sections())
    md10 = "\n".join(Report(bundle_dir, "nl", threshold=10, figdir=tmp_path).sections())
    assert md10.count(f"| {SUPPRESSED} |") > md5.count(f"| {SUPPRESSED} |")
    assert "kleiner dan 10" in Report(bundle_dir, "nl", threshold=10, figdir=tmp_path).title_block()


def test_texts_in_both_languages() -> None:
    for key, texts in TEXT.items():
        assert set(texts) == {"nl", "en"}, key
        assert texts["nl"].strip() and texts["en"].strip(), key


# ---------------------------------------------------------------------------- command line and engine
def test_parse_param() -> None:
    assert parse_param("threshold=10") == ("threshold", 10)
    assert parse_param("main_method:weighted") == ("main_method", "weighted")
    assert parse_param("figdir=figs") == ("figdir", "figs")
    with pytest.raises(ConfigError):
        parse_param("=3")


def test_cli_parser() -> None:
    from analysis.cli import make_parser

    args = make_parser().parse_args(["report", "--bundle", "b", "--lang", "en", "-P", "threshold=10", "--format", "html"])
    assert args.command == "report" and args.lang == "en" and args.params == ["threshold=10"] and args.formats == ["html"]


def test_cli_rejects_unknown_language(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        render_report(bundle_dir, lang="fr", out=tmp_path)


def test_fallback_engine_cell_options(tmp_path: Path) -> None:
    """echo, include, output: asis, label and fig-cap, and -P injection after the parameters cell."""
    qmd = tmp_path / "mini.qmd"
    qmd.write_text(
        """---
title: "Mini"
---

Intro text.

```{python}
#| tags: [parameters]
word = "default"
```

```{python}
#| echo: false
#| output: asis
print(f"## Heading {word}")
```

```{python}
shown = 1 + 1
print(shown)
```

```{python}
#| include: false
hidden = "SHOULD-NOT-APPEAR"
print(hidden)
```

```{python}
#| echo: false
#| label: fig-mini
#| fig-cap: "A mini figure"
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 1))
ax.plot([0, 1], [0, 1])
plt.show()
```
""",
        encoding="utf-8",
    )
    bundle = make_tiny_bundle(tmp_path / "b")
    res = render_report(bundle, lang="en", out=tmp_path / "out", qmd=qmd, formats=("html",), engine="python", params={"word": "injected"})
    html = res.outputs["html"].read_text(encoding="utf-8")
    assert "Heading injected" in html
    assert "(shown)" in html  # echo defaults to true, as in Quarto
    assert "SHOULD-NOT-APPEAR" not in html
    assert "A mini figure" in html
    assert 'id="fig-mini"' in html
    assert "data:image/png;base64," in html


def make_tiny_bundle(path: Path) -> Path:
    from analysis.bundle import write_bundle

    write_bundle(path, {}, {}, {"config": {}})
    return path
