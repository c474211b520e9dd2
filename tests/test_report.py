"""The evaluation report: rendered for real (HTML, PDF, DOCX, both languages) from a demo results bundle.

The bundle is computed by :mod:`tests.report_fixture` from a small synthetic study.  The renders use
whatever engine ``popeval report`` would use (Quarto when on PATH, else jupytext + nbclient + pandoc +
typst with ``reports/_lib/popeval.lua``).  Layout, tick labels, language and disclosure are tested on
the rendered files, not on intermediate Markdown.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pop_privacy import assert_no_personal_text
from report_fixture import make_demo_bundle
from shared_studies import generated_study

from analysis.bundle import read_bundle
from analysis.report.builder import Report, grid_table, protect, threshold_from_manifest
from analysis.report.formatting import MISSING, SUPPRESSED, fmt_int, fmt_pct, fmt_signed
from analysis.report.labels import COUNT_HEADERS, LABELS, category_label, label, method_label
from analysis.report.render import expand_includes, parse_param, render_report
from survey.errors import ConfigError

REPORTS = Path(__file__).resolve().parents[1] / "reports"
LANGS = ("nl", "en")
needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bundle_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work folder of the bundle's run (its derived folder: the database, the POP sheets)."""
    return tmp_path_factory.mktemp("report_work")


@pytest.fixture(scope="module")
def bundle_dir(bundle_work: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's bundle with the POP part (as ``make demo`` writes it)."""
    return make_demo_bundle(tmp_path_factory.mktemp("report") / "bundle", work=bundle_work, plans=True)


@pytest.fixture(scope="module")
def rendered(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("rendered")
    params = {"run_time": "2026-12-01T09:00:00+00:00"}
    return {lang: dict(render_report(bundle_dir, lang=lang, out=out, params=params).outputs) for lang in LANGS}


def _norm(text: str) -> str:
    """Collapse every kind of space (including non-breaking) to one space."""
    return re.sub(r"[\s\u00a0\u202f]+", " ", text.replace("&nbsp;", " "))


class _Tables(HTMLParser):
    """Every <table> of an HTML page: header rows and body rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, list[list[str]]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append({"head": [], "body": []})
        elif tag == "thead":
            self._head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._head = False
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(_norm("".join(self._cell)).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1]["head" if self._head else "body"].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> list[dict[str, list[list[str]]]]:
    p = _Tables()
    p.feed(html)
    return p.tables


def _visible_text(html: str) -> str:
    """The text a reader sees: no tags, no <code> (the technical annex's literal settings), no style."""
    html = re.sub(r"<(style|script|code)\b.*?</\1>", " ", html, flags=re.S | re.I)
    html = re.sub(r'<img\b[^>]*\balt="([^"]*)"[^>]*>', r" \1 ", html)  # alt texts are read too
    import html as htmllib

    return _norm(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)))


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package chromium)")

# Injected into the report page: once it has loaded, lists every element that reaches past the
# viewport's right edge and is not inside a container that scrolls (or clips) sideways -- prose and
# captions count even there, as they must be readable without scrolling -- and posts
# the page's scroll width, the viewport width and that list to the harness page around it.
_OVERFLOW_PROBE = """<script>
window.addEventListener('load', function () {
  var vw = window.innerWidth, wide = [];
  document.querySelectorAll('body *').forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 0.5) return;
    // prose and captions are read without scrolling sideways, also above a table that scrolls
    var prose = el.matches('caption, p, li, h1, h2, h3, h4, figcaption') && !el.closest('td, th');
    for (var p = el.parentElement; p && !prose; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') return;
    }
    wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '') + ' ' + Math.round(r.right) + 'px: ' + (el.textContent || '').slice(0, 40));
  });
  parent.postMessage(JSON.stringify({viewport: vw, scroll_width: document.documentElement.scrollWidth, wide: wide}), '*');
});
</script>"""


def _pages_overflow(pages: list[tuple[Path, int]], work: Path) -> list[dict[str, object]]:
    """Load each ``(html, width)`` in headless Chromium, in a frame ``width`` CSS pixels wide, and measure its overflow.

    Frames because Chromium's headless window is never narrower than 500 pixels; all of them in
    one page, so that Chromium starts once.
    """
    import html as htmllib
    import json

    work.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, (html, width) in enumerate(pages):
        page = work / f"page-{i}.html"
        page.write_text(html.read_text(encoding="utf-8").replace("</body>", _OVERFLOW_PROBE + "</body>"), encoding="utf-8")
        frames.append(f'<iframe src="{page.name}" style="display:block;width:{width}px;height:2000px;border:0"></iframe>')
    harness = work / "harness.html"
    harness.write_text(
        '<!DOCTYPE html><html><body style="margin:0">' + "".join(frames)
        + "<script>window.addEventListener('message', function (e) { var f = document.querySelectorAll('iframe');"
        " for (var i = 0; i < f.length; i++) { if (f[i].contentWindow === e.source) { var p = document.createElement('pre');"
        " p.id = 'popeval-result-' + i; p.textContent = e.data; document.body.appendChild(p); } } });</script></body></html>",
        encoding="utf-8",
    )
    assert CHROMIUM is not None
    widest = max(w for _, w in pages)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={work / 'profile'}", f"--window-size={widest + 100},2100", "--virtual-time-budget=20000", "--dump-dom", harness.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    found = dict(re.findall(r'<pre id="popeval-result-(\d+)">([^<]*)</pre>', r.stdout))
    missing = [str(pages[i][0]) for i in range(len(pages)) if str(i) not in found]
    assert not missing, f"pages did not report their layout (exit {r.returncode}): {missing} {r.stderr[-2000:]}"
    return [dict(json.loads(htmllib.unescape(found[str(i)]))) for i in range(len(pages))]


def _pdftotext(path: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------------------- the POP part
def _expected(bundle: Path, lang: str) -> dict[str, str]:
    """The section's numbers formatted here from the bundle's CSV (not through the report's code)."""
    est = pd.read_csv(bundle / "tables" / "plans_estimates.csv")
    sep = "," if lang == "nl" else "."
    pct = "\u00a0%" if lang == "nl" else "%"
    word = "tot" if lang == "nl" else "to"

    def p(x: float) -> str:
        return f"{100 * x:.1f}".replace(".", sep) + pct

    out = {}
    for m, e in (("no_training", "design"), ("no_reason", "design"), ("goal_talent", "design"), ("goal_balance", "design"), ("goal_reorientation", "design"), ("mismatch", "design"), ("mismatch", "combined")):
        r = est[(est["measure"] == m) & (est["estimator"] == e) & (est["stratum"] == "alle")].iloc[0]
        out[f"{m}/{e}"] = p(r["estimate"])
        out[f"{m}/{e}/ci"] = f"{p(r['ci_lower'])} {word} {p(r['ci_upper'])}"
    # per stratum, with the interval
    st = est[(est["measure"] == "mismatch") & (est["estimator"] == "design") & (est["stratum"] != "alle")].dropna(subset=["estimate"]).iloc[0]
    out["mismatch/stratum"] = f"{p(st['estimate'])} ({p(st['ci_lower'])} {word} {p(st['ci_upper'])})"
    agr = pd.read_csv(bundle / "tables" / "plans_agreement.csv")
    out["kappa"] = f"{agr['kappa'].min():.2f}".replace(".", sep) + f" {word} " + f"{agr['kappa'].max():.2f}".replace(".", sep)
    return out


def _admin_share(derived: Path) -> float:
    """attest_matches_training among POP-attest holders, straight from the run's linked population."""
    from analysis.population import load_population

    db = next(derived.glob("popeval-*.duckdb"))
    pop = load_population(db, ["pop_attest", "attest_matches_training"])
    sel = pop[pop["pop_attest"].astype(bool)]
    return float(sel["attest_matches_training"].astype(bool).mean())


@pytest.mark.parametrize("lang", LANGS)
def test_whole_report_renders_the_plans_section_with_its_numbers(rendered: dict[str, dict[str, Path]], bundle_dir: Path, bundle_work: Path, lang: str) -> None:
    html = rendered[lang]["html"].read_text(encoding="utf-8").replace("&nbsp;", "\u00a0").replace("&#160;", "\u00a0").replace("\u2019", "'")
    heading = "Het POP en het POP-attest" if lang == "nl" else "The POP and the POP-attest"
    assert heading in html
    for what, needle in _expected(bundle_dir, lang).items():
        assert needle in html, (what, needle)
    share = _admin_share(bundle_work / "derived")
    sep, pct = ("," if lang == "nl" else "."), ("\u00a0%" if lang == "nl" else "%")
    assert f"{100 * share:.1f}".replace(".", sep) + pct in html  # the admin-level attest_matches_training
    assert ("Eerste meting" if lang == "nl" else "first wave") in html
    assert "POP-attest" in html and ("Cohens kappa" if lang == "nl" else "Cohen's kappa") in html
    assert_no_personal_text(html, generated_study(20_000, 5, plans=True))


# ---------------------------------------------------------------------------- rendering
def test_outputs_exist(rendered: dict[str, dict[str, Path]]) -> None:
    for lang in LANGS:
        assert set(rendered[lang]) == {"html", "pdf", "docx"}
        assert rendered[lang]["pdf"].read_bytes().startswith(b"%PDF")
        with zipfile.ZipFile(rendered[lang]["docx"]) as z:
            doc = z.read("word/document.xml").decode("utf-8")
            media = [n for n in z.namelist() if n.startswith("word/media/")]
        assert label("title", lang) in doc
        assert len(media) == 4  # the four figures are embedded


def test_html_is_self_contained(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    for lang in LANGS:
        html = rendered[lang]["html"].read_text(encoding="utf-8")
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.I), lang
        assert not re.search(r"<link[^>]*stylesheet", html, flags=re.I)
        imgs = re.findall(r"<img[^>]*\bsrc=\"([^\"]*)\"", html)
        assert len(imgs) == 4
        assert all(src.startswith("data:image/png;base64,") for src in imgs)
        assert str(bundle_dir.parent) not in html  # no local paths leak into the report


def _key_numbers(bundle_dir: Path, lang: str) -> list[str]:
    b = read_bundle(bundle_dir)
    share = b.table("pop_share").set_index("incentive")
    flow = b.table("response_flow").set_index("step")
    eff = b.table("effects")
    main = eff[(eff["method"] == "matching") & (eff["scale"] == "top2") & (eff["outcome"] == "stronger")].iloc[0]
    return [fmt_pct(share.at["OC", "pct_pop"], 1, lang), fmt_int(share.at["VOV", "n_approved"], lang), fmt_int(flow.at["invited", "n"], lang), fmt_signed(100 * main["estimate"], 1, lang)]


def test_key_numbers_in_html_and_pdf(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    nl = _key_numbers(bundle_dir, "nl")
    assert "," in nl[0] and "." in nl[1]  # Belgian: decimal comma, thousands point
    for lang in LANGS:
        html = _norm(rendered[lang]["html"].read_text(encoding="utf-8"))
        for number in _key_numbers(bundle_dir, lang):
            assert _norm(number) in html, (lang, number)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed")
    for lang in LANGS:
        text = _norm(_pdftotext(rendered[lang]["pdf"]))
        for number in _key_numbers(bundle_dir, lang):
            assert _norm(number) in text, (lang, number)


def test_date_title_and_colofon(rendered: dict[str, dict[str, Path]]) -> None:
    for lang, date in (("nl", "1 december 2026"), ("en", "1 December 2026")):
        html = _norm(rendered[lang]["html"].read_text(encoding="utf-8"))
        assert re.search(rf'class="date"[^>]*>{date}<', html), lang
        with zipfile.ZipFile(rendered[lang]["docx"]) as z:
            doc = z.read("word/document.xml").decode("utf-8")
        assert date in doc and 'w:val="Colofon"' in doc
    if shutil.which("pdftotext") is not None:
        nl = _norm(_pdftotext(rendered["nl"]["pdf"]))
        assert "1 december 2026" in nl and "Verantwoordelijke uitgever" in nl and "Citeren als" in nl


# ---------------------------------------------------------------------------- layout
def _pdf_words(path: Path) -> list[tuple[float, float, list[tuple[float, float, float, float, str]]]]:
    """Per page: width, height and every word's box (xMin, yMin, xMax, yMax, text)."""
    xml = _pdftotext(path, "-bbox")
    pages = []
    for m in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', xml, flags=re.S):
        words = [
            (float(a), float(b), float(c), float(d), w)
            for a, b, c, d, w in re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', m.group(3))
        ]
        pages.append((float(m.group(1)), float(m.group(2)), words))
    return pages


@needs_pdftotext
@pytest.mark.parametrize("lang", LANGS)
def test_pdf_no_overlapping_words_and_clean_footer(rendered: dict[str, dict[str, Path]], lang: str) -> None:
    """No two words of a page overlap or touch (tables that spill into each other, rows printed on top
    of one another, column names running into the next column), and nothing but the page number sits
    in the footer band (the bottom margin)."""
    pages = _pdf_words(rendered[lang]["pdf"])
    assert len(pages) > 8
    footer_band = 2.2 / 2.54 * 72  # the template's bottom margin, in points
    for n, (_w, h, words) in enumerate(pages, start=1):
        in_footer = [w for w in words if w[1] > h - footer_band]
        assert [w[4] for w in in_footer] == [str(n)], f"page {n}: footer holds {[w[4] for w in in_footer]}"
        boxes = sorted(words, key=lambda w: w[0])
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                if b[0] >= a[2]:
                    break
                dx = min(a[2], b[2]) - max(a[0], b[0])
                dy = min(a[3], b[3]) - max(a[1], b[1])
                smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                assert not (dx > 0.5 and dy > 0.5 and dx * dy > 0.15 * smaller), f"page {n}: {a[4]!r} overlaps {b[4]!r}"
        # nor do two words of one line touch (less than half a space apart): a column name wider
        # than its column runs into the next one
        lines: dict[float, list[tuple[float, float, float, float, str]]] = {}
        for w in words:
            lines.setdefault(round(w[1]), []).append(w)
        for line in lines.values():
            line.sort(key=lambda w: w[0])
            for a, b in itertools.pairwise(line):
                assert not -0.5 < b[0] - a[2] < 1.2, f"page {n}: {a[4]!r} runs into {b[4]!r}"


@needs_pdftotext
def test_pdf_tables_break_and_keep_their_source(rendered: dict[str, dict[str, Path]]) -> None:
    """Long tables break across pages, and no page ends with a caption or starts with a source line."""
    text = _pdftotext(rendered["nl"]["pdf"])
    pages = [p.strip() for p in text.split("\f") if p.strip()]
    for p in pages:
        lines = [ln for ln in p.splitlines() if ln.strip()]
        body = [ln for ln in lines if ln.strip() not in (label("publisher", "nl"), label("title", "nl")) and not ln.strip().isdigit()]
        assert not re.match(r"^Tabel \d+:", body[-1]), f"caption at the foot of a page: {body[-1]}"
        assert not body[0].startswith("Bron:"), f"orphaned source line: {body[0]}"


@needs_pdftotext
def test_pdf_has_alt_text(rendered: dict[str, dict[str, Path]]) -> None:
    data = rendered["nl"]["pdf"].read_bytes()
    assert data.count(b"/Alt") >= 4


# The template's margins (typst-template.typ), in points: text starts 2.2 cm from the left edge;
# the running header sits above 2.4 cm, the page number below the last 2.2 cm.
_LEFT, _TOP, _BOTTOM = 2.2 / 2.54 * 72, 2.4 / 2.54 * 72, 2.2 / 2.54 * 72
_CAPTIONS = {"nl": ("Tabel", "Figuur", "Bron:"), "en": ("Table", "Figure", "Source:")}


def _pdf_lines(path: Path) -> list[list[tuple[float, float, str]]]:
    """Per page, its lines from top to bottom between the running header and the footer band:
    (top, left edge, text) -- the order in which a reader reads them."""
    import html

    pages = []
    for _w, h, words in _pdf_words(path):
        rows: dict[float, list[tuple[float, str]]] = {}
        for x0, y0, _x1, y1, w in words:
            if y0 > _TOP - 8 and y1 < h - _BOTTOM:
                key = next((k for k in rows if abs(k - y0) < 1.5), y0)
                rows.setdefault(key, []).append((x0, html.unescape(w)))
        pages.append([(y, min(x for x, _ in ws), " ".join(w for _, w in sorted(ws))) for y, ws in sorted(rows.items())])
    return pages


def _group_rows(r: Report) -> dict[str, set[str]]:
    """Every group row label of the report's grouped tables -> the first words of its rows."""
    from analysis.report.builder import Group

    groups: dict[str, set[str]] = {}
    for name in ("pop_share", "profile", "domains", "flow", "margins", "weights", "balance", "effects_top2", "effects_likert", "summary", "shifts", "sensitivity"):
        current: set[str] | None = None
        for row in r.table(name).rows:
            if isinstance(row, Group):
                current = groups.setdefault(row.text, set())
            elif current is not None:
                current.add(str(row[0]).split()[0])
    return groups


def _orphaned_group_rows(pdf: Path, groups: dict[str, set[str]]) -> list[str]:
    """Group rows (a label line at the table's left edge) not followed on their page by a row of their group."""
    bad = []
    for n, lines in enumerate(_pdf_lines(pdf), start=1):
        for i, (_y, x0, text) in enumerate(lines):
            if text in groups and x0 < _LEFT + 12:
                nxt = lines[i + 1][2] if i + 1 < len(lines) else None
                if nxt is None or nxt.split()[0] not in groups[text]:
                    bad.append(f"page {n}: group row {text!r} is followed by {nxt!r}")
    return bad


def _figures_inside_tables(pdf: Path, lang: str) -> list[str]:
    """Figures whose caption a reader meets between a table's caption and the table's own source
    line (its last row): a figure placed between the parts of a table broken over two pages."""
    table, figure, source = _CAPTIONS[lang]
    bad, open_table = [], None
    for n, lines in enumerate(_pdf_lines(pdf), start=1):
        for _y, _x, text in lines:
            if re.match(rf"{table} \d+:", text):
                open_table = text.split(":")[0]
            elif open_table and re.match(rf"{figure} \d+:", text):
                bad.append(f"page {n}: {text.split(':')[0]} between the parts of {open_table}")
            elif open_table and source in text:
                open_table = None
    return bad


@needs_pdftotext
@pytest.mark.parametrize("lang", LANGS)
def test_pdf_group_rows_never_end_a_page(rendered: dict[str, dict[str, Path]], bundle_dir: Path, lang: str) -> None:
    """A table's group row ('Leeftijd', 'Professioneel sterker') is never the last table line of a
    page: its first row follows it on the same page, and where the group continues on the next page
    its label is repeated above the rows there."""
    groups = _group_rows(Report(bundle_dir, lang))
    assert {"Onderwijsniveau", "Geslacht"} <= set(groups) or {"Education level", "Sex"} <= set(groups)
    seen = sum(text in groups and x0 < _LEFT + 12 for page in _pdf_lines(rendered[lang]["pdf"]) for _y, x0, text in page)
    assert seen >= 20  # the check finds the group rows it looks at
    assert _orphaned_group_rows(rendered[lang]["pdf"], groups) == []


@needs_pdftotext
@pytest.mark.parametrize("lang", LANGS)
def test_pdf_figures_never_between_the_parts_of_a_table(rendered: dict[str, dict[str, Path]], lang: str) -> None:
    """Figures and tables keep the text's order: no figure sits between the two parts of a table
    that breaks over two pages (a reader meets every table's source line before the next figure)."""
    table, figure, _source = _CAPTIONS[lang]
    text = "\n".join(t for page in _pdf_lines(rendered[lang]["pdf"]) for _y, _x, t in page)
    assert len(re.findall(rf"^{figure} \d+:", text, flags=re.M)) == 4 and len(re.findall(rf"^{table} \d+:", text, flags=re.M)) > 10
    assert _figures_inside_tables(rendered[lang]["pdf"], lang) == []


def _long_grouped_table(tmp_path: Path) -> Path:
    """A report whose grouped table breaks over three pages with a figure right after it: laid out
    so that a group row falls at the foot of a page and a floating figure would land on the table's
    last page, above its last rows."""
    (tmp_path / "_quarto.yml").write_text(
        f"filters:\n  - {REPORTS / '_lib' / 'popeval.lua'}\nexecute:\n  echo: false\nformat:\n  typst:\n    template-partials:\n      - {REPORTS / '_lib' / 'typst-template.typ'}\n",
        encoding="utf-8",
    )
    text = "Some words of running text that fill the page before the table. " * 30
    qmd = tmp_path / "groups.qmd"
    qmd.write_text(
        f"""---
title: "Groups"
lang: en-GB
---

{text}

```{{python}}
#| label: tbl-groups
#| tbl-cap: "A grouped table"
from analysis.report.builder import Group, grid_table
rows = []
for g in range(1, 32):
    rows.append(Group(f"Group {{g}}"))
    rows += [[f"Row{{g}}x{{k}}", str(k)] for k in range(1, 2 + g % 2)]
grid_table(["Label", "Value"], rows, "lr")
```

::: {{.source}}
Source: made up for the test.
:::

```{{python}}
#| label: fig-after
#| fig-cap: "A figure after the table"
#| fig-alt: "A line rising from the lower left to the upper right, drawn for the test."
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot([0, 1], [0, 1])
plt.show()
```

{text}
""",
        encoding="utf-8",
    )
    return qmd


@needs_pdftotext
def test_pdf_long_grouped_table_keeps_its_group_rows_and_the_figure_after_it(tmp_path: Path) -> None:
    """The layout rules hold where they are put to the test (a group row at a page's foot, a figure
    that would float into a broken table), not only where the demo report happens to break."""
    qmd = _long_grouped_table(tmp_path)
    pdf = render_report(_tiny_bundle(tmp_path / "b"), lang="en", out=tmp_path / "out", qmd=qmd, formats=("pdf",), engine="python").outputs["pdf"]
    pages = _pdf_lines(pdf)
    assert len(pages) >= 3
    groups = {f"Group {g}": {f"Row{g}x1", f"Row{g}x2"} for g in range(1, 32)}
    assert _orphaned_group_rows(pdf, groups) == []
    assert _figures_inside_tables(pdf, "en") == []
    # a group that continues on the next page has its label repeated there, above its rows
    continued = [page[1][2] for page in pages[1:] if len(page) > 1 and page[0][2] == "Label Value"]
    assert continued and all(not re.match(r"Row\d+x2", t) for t in continued), continued


# ---------------------------------------------------------------------------- figures
def _parse_number(text: str, lang: str) -> float:
    t = text.replace("\u2212", "-")
    t = t.replace(".", "").replace(",", ".") if lang == "nl" else t.replace(",", "")
    return float(t)


@pytest.mark.parametrize("lang", LANGS)
def test_every_tick_label_parses_back_to_its_value(bundle_dir: Path, lang: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = Report(bundle_dir, lang)
    shown = []
    close = plt.close  # the figures stay open to be inspected, and are closed here afterwards
    monkeypatch.setattr(Report, "show", lambda self, fig: shown.append(fig))
    monkeypatch.setattr(plt, "close", lambda *a, **k: None)
    for name in ("profile", "flow", "balance", "forest"):
        r.figure(name)
    assert len(shown) == 4
    checked = 0
    for fig in shown:
        fig.canvas.draw()
        for ax in fig.axes:
            if not ax.get_visible() or not ax.axison:
                continue
            for tick, value in zip(ax.get_xticklabels(), ax.get_xticks(), strict=True):
                text = tick.get_text()
                if not text or not (ax.get_xlim()[0] - 1e-9 <= value <= ax.get_xlim()[1] + 1e-9):
                    continue
                assert _parse_number(text, lang) == pytest.approx(value, abs=1e-9), (text, value)
                checked += 1
        close(fig)
    assert checked > 20


def test_forest_plot_marks_main_estimator_and_labels_methods(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")

    from analysis.report.labels import method_label

    r = Report(bundle_dir, "nl")
    shown = []
    monkeypatch.setattr(Report, "show", lambda self, fig: shown.append(fig))
    r.figure("forest")
    ax = shown[0].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert method_label("matching", "nl") in labels and method_label("regression", "nl") in labels
    bold = [t.get_text() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"]
    assert bold == [method_label("matching", "nl")]
    assert ax.get_legend() is None  # methods are on the axis: no legend squeezing the data
    assert len({a.get_xlim() for a in shown[0].axes if a.axison}) == 1  # one x-scale for every panel


# ---------------------------------------------------------------------------- language
ENGLISH = ("the", "and", "with", "which", "from", "this", "synthetic", "weighted", "nearest", "neighbour", "caliper", "familywise", "error", "rate", "discovery", "source", "table", "figure", "difference", "matched")
DUTCH = ("de", "het", "een", "niet", "voor", "zijn", "wordt", "bij", "ook", "naar", "tabel", "figuur", "bron", "bewerking", "gewogen", "verschil", "geen", "akkoord", "jaar")
RAW_CODES = ("55+", "250+", "18-24", "1-9", "ZORG", "ONDERWIJS", "MANAGEMENT", "doubly_robust", "fixed_effects", "ordered_logit", "unadjusted", "aipw", "ologit", "absorbed", "naive", "likert", "top2", "rake", "popeval", "job_better", "n_treated", "nan", "None")


@pytest.mark.parametrize("lang", LANGS)
def test_no_language_leaks_or_raw_codes(rendered: dict[str, dict[str, Path]], lang: str) -> None:
    text = _visible_text(rendered[lang]["html"].read_text(encoding="utf-8"))
    words = re.findall(r"[A-Za-zÀ-ÿ]+", text)
    lower = {w.lower() for w in words}
    foreign = ENGLISH if lang == "nl" else DUTCH
    assert not (lower & set(foreign)), f"{lang}: words of the other language: {sorted(lower & set(foreign))}"
    tokens = set(re.findall(r"[\w+\-]+", text))
    leaks = [c for c in RAW_CODES if c in tokens]
    assert not leaks, f"{lang}: raw codes in the report: {leaks}"
    assert "Departement WSE" in text or "Department of Work and Social Economy" in text  # credited, not the software


def test_category_labels_from_the_codebook() -> None:
    assert category_label("age_band", "55+", "nl") == "55 jaar of ouder"
    assert category_label("pop x company_size", "1 x 250+", "en") == "POP × 250 employees or more"
    assert category_label("pop x age_band", "0 x 55++0 x 45-54", "nl") == "Geen POP × 55 jaar of ouder + Geen POP × 45 tot 54 jaar"
    assert category_label("sector", "primair+secundair", "nl") == "Primaire sector + Secundaire sector"


# ---------------------------------------------------------------------------- structure of the sources
def _structure(path: Path) -> dict[str, list[str]]:
    text = expand_includes(path)
    return {
        "labels": re.findall(r"^#\|\s*label:\s*(\S+)", text, flags=re.M),
        "sections": re.findall(r"^#+ .*\{#(sec-[\w-]+)", text, flags=re.M),
        "headings": [m.count("#") for m in re.findall(r"^(#+) ", text, flags=re.M)],
        "refs": re.findall(r"@((?:tbl|fig|sec)-[\w-]+)", text),
        "facts": sorted(set(re.findall(r"r\.fact\.(\w+)", text))),
        "callouts": re.findall(r"\{\.callout-(\w+)", text),
        "conditions": re.findall(r'when-meta="([^"]+)"', text),
    }


def test_both_languages_have_the_same_labels_and_sections() -> None:
    nl, en = _structure(REPORTS / "evaluation-nl.qmd"), _structure(REPORTS / "evaluation-en.qmd")
    assert len(nl["labels"]) > 15 and len(nl["sections"]) >= 10
    for key in nl:
        assert nl[key] == en[key], key


def test_every_quoted_number_exists(bundle_dir: Path) -> None:
    facts = Report(bundle_dir, "nl").fact.to_dict()
    used = set(_structure(REPORTS / "evaluation-nl.qmd")["facts"])
    assert used <= set(facts), sorted(used - set(facts))
    with pytest.raises(ConfigError):
        _ = Report(bundle_dir, "nl").fact.no_such_number


def test_extrapolated_share_is_in_the_bundle_and_quoted(bundle_dir: Path) -> None:
    """The effects table flags the model-based methods' extrapolation; the report quotes its maximum."""
    eff = read_bundle(bundle_dir).tables["effects"]
    model = eff["method"].isin(["regression", "aipw", "ologit"])
    assert model.any() and eff.loc[model, "extrapolated"].between(0, 1).all()
    assert eff.loc[~model, "extrapolated"].isna().all()
    facts = Report(bundle_dir, "en").fact.to_dict()
    assert facts["extrapolated_max"] == fmt_pct(100 * float(eff.loc[model, "extrapolated"].max()), 1, "en")


# ---------------------------------------------------------------------------- tables
@pytest.mark.parametrize("lang", LANGS)
def test_prose_never_shows_the_suppression_flag(rendered: dict[str, dict[str, Path]], bundle_dir: Path, lang: str) -> None:
    """A suppressed number quoted in a sentence reads as words, not as the tables' flag 'x'."""
    import html as htmllib

    page = re.sub(r"<(table|style|script|code)\b.*?</\1>", " ", rendered[lang]["html"].read_text(encoding="utf-8"), flags=re.S | re.I)
    prose = [_norm(htmllib.unescape(re.sub(r"<[^>]+>", "", m))) for m in re.findall(r"<(?:p|li)\b[^>]*>(.*?)</(?:p|li)>", page, flags=re.S)]
    flag = re.compile(rf"(?<![\w‘’'\"]){re.escape(SUPPRESSED)}(?![\w‘’'\"])")
    assert [t for t in prose if flag.search(t)] == []
    facts = Report(bundle_dir, lang).fact.to_dict()
    assert label("suppressed_in_prose", lang) in facts.values()  # the demo study has such a number
    assert facts["x"] == SUPPRESSED  # (the notice that explains the flag quotes it)


@pytest.mark.parametrize("lang", LANGS)
def test_no_small_counts_in_html_tables(rendered: dict[str, dict[str, Path]], lang: str) -> None:
    cells, suppressed = [], 0
    for table in _tables(rendered[lang]["html"].read_text(encoding="utf-8")):
        if not table["head"]:
            continue
        header = table["head"][-1]
        cols = [i for i, h in enumerate(header) if h in COUNT_HEADERS[lang]]
        cells += [row[i] for row in table["body"] if len(row) == len(header) for i in cols]
    assert len(cells) > 50
    for cell in cells:
        if cell in (SUPPRESSED, MISSING, ""):
            suppressed += cell == SUPPRESSED
            continue
        value = int(cell.replace(".", "").replace(",", "").replace(" ", ""))
        assert value == 0 or value >= 5, f"count {cell} below the threshold in the {lang} HTML"
    assert suppressed >= 1  # the demo has a small cell, suppressed


def test_margins_table_groups_and_composition(bundle_dir: Path) -> None:
    r = Report(bundle_dir, "nl")
    t = r.table("margins")
    assert [g for g, _ in t.groups] == ["", "POP", "Geen POP"]
    assert label("col_pct_weighted", "nl") not in t.columns  # equal to the population's by construction
    frame = r.frame("margins")
    # composition within each group: the population percentages of a characteristic add up to 100
    educ = frame[frame[""] == "Onderwijsniveau"]
    for col in (3, 7):  # % of the population, POP and no POP ('–' where a cell was merged with another)
        cells = educ.iloc[:, col]
        assert not cells.eq(SUPPRESSED).any()
        pct = cells[cells != MISSING].str.replace("\u00a0%", "").str.replace(",", ".").astype(float)
        assert pct.sum() == pytest.approx(100.0, abs=0.2)
    # every group row names its characteristic; no blanked-out row labels
    assert frame.iloc[:, 1].ne("").all()


def test_effects_tables_mark_main_estimator_and_se(bundle_dir: Path) -> None:
    r = Report(bundle_dir, "nl")
    for name in ("effects_top2", "effects_likert"):
        frame = r.frame(name)
        main = frame[frame["Methode"].str.contains(label("main_marker", "nl"))]
        assert len(main) == 4 and (main["Standaardfout"] == label("se_replicate", "nl")).all()
        others = frame[~frame.index.isin(main.index) & (frame["Verschil (procentpunt)" if name == "effects_top2" else "Verschil (punten)"] != label("not_estimable", "nl"))]
        # with replicates every published estimator has the end-to-end replicate SE
        assert len(others) > 0 and (others["Standaardfout"] == label("se_replicate", "nl")).all()
    shifts = r.frame("shifts")
    assert shifts[label("col_ci", "nl")].str.startswith("[").all()


def test_verdicts_say_when_methods_disagree(bundle_dir: Path) -> None:
    import numpy as np

    r = Report(bundle_dir, "nl")
    eff = r.bundle.table("effects")
    top2 = eff[eff["scale"] == "top2"]
    for outcome, verdict in r.verdicts().items():
        rows = top2[(top2["outcome"] == outcome) & ~top2["method"].isin(["naive", "weighted"])]
        sig = rows["p_holm"] < 0.05
        main_sig = bool(sig[rows["method"] == "matching"].all())
        if verdict == "consistent":
            assert sig.all() and (rows["estimate"] > 0).all()
        elif verdict == "inconclusive":
            assert (not main_sig and sig.any()) or (np.sign(rows.loc[sig, "estimate"]).nunique() > 1)
        elif verdict == "none":
            assert not sig.any()


def test_grid_table_wraps_between_words_and_spans_groups() -> None:
    from analysis.report.builder import Group

    t = grid_table(["Kenmerk", "Aantal", "%"], [Group("Een groep"), ["Een heel lange categorie die over meerdere regels loopt", "1.234", "5,0 %"]], "lrr", groups=[("", 1), ("POP", 2)])
    md = t.markdown()
    assert "| POP" in md and "**Een groep**" in md
    assert all("categorie die over meerdere regels loopt"[:10] not in ln or ln.count("|") == 4 for ln in md.splitlines())
    with pytest.raises(ConfigError):
        grid_table(["a", "b"], [["1"]], "lr")


# ---------------------------------------------------------------------------- disclosure control
def test_protect_primary_secondary_and_percentages() -> None:
    df = pd.DataFrame({"variable": ["a", "a", "a", "b", "b"], "n": [3, 40, 50, 20, 30], "pct": [3.2, 43.0, 53.8, 40.0, 60.0]})
    p = protect(df, ["n"], 5, by=["variable"], derived={"n": ["pct"]})
    assert p.suppressed["n"].tolist() == [True, True, False, False, False]
    assert p.suppressed["pct"].tolist() == [True, True, False, False, False]
    assert protect(df, ["n"], 2, by=["variable"]).n_suppressed == 0


def test_protect_complement() -> None:
    df = pd.DataFrame({"g": ["a", "a"], "part": [30, 50], "total": [32, 200]})
    p = protect(df, ["part", "total"], 5, by=["g"], complements=[("part", "total")])
    assert p.suppressed.at[0, "part"] and p.suppressed.at[1, "part"]


def test_threshold_from_manifest() -> None:
    assert threshold_from_manifest({}) == 5
    assert threshold_from_manifest({"config": {"disclosure": {"threshold": 10}}}) == 10
    assert threshold_from_manifest({"config": {"disclosure": {"threshold": 10}}}, 3) == 3
    with pytest.raises(ConfigError):
        threshold_from_manifest({}, 0)


def test_threshold_parameter_suppresses_more(bundle_dir: Path) -> None:
    def n_hidden(r: Report) -> int:
        return sum(str(r.table(n)).count(f"| {SUPPRESSED} ") for n in ("profile", "margins", "domains", "flow"))

    assert n_hidden(Report(bundle_dir, "nl", threshold=200)) > n_hidden(Report(bundle_dir, "nl"))
    assert Report(bundle_dir, "nl", threshold=10).fact.threshold == "10"


def test_disclosure_and_demo_notices(rendered: dict[str, dict[str, Path]]) -> None:
    html = rendered["nl"]["html"].read_text(encoding="utf-8")
    assert html.count('class="callout callout-warning"') == 1 and "Demonstratiegegevens" in html
    assert 'class="callout callout-note"' in html and "kleiner dan 5" in _norm(html)


def test_labels_in_both_languages() -> None:
    for key, texts in LABELS.items():
        assert set(texts) == {"nl", "en"}, key
        assert texts["nl"].strip() and texts["en"].strip(), key


# ---------------------------------------------------------------------------- optional bundle parts
def _variant(src: Path, dst: Path, *, tables: dict[str, pd.DataFrame] | None = None, estimates: dict[str, object] | None = None, manifest: dict[str, object] | None = None) -> Path:
    """A copy of a bundle with some parts replaced, written by write_bundle (so it checks out)."""
    from analysis.bundle import write_bundle
    from analysis.plans.tables import PLANS_TABLES

    b = read_bundle(src)
    man = {k: v for k, v in {**b.manifest, **(manifest or {})}.items() if k != "files"}
    write_bundle(dst, {**b.tables, **(tables or {})}, {**b.estimates, **(estimates or {})}, man, extra_tables=PLANS_TABLES)
    return dst


def test_optional_parts_are_shown_when_present(bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An estimand statement, an overlap table and a method that could not be estimated (with its
    reason) are read when the bundle has them; without them the report still builds."""

    eff = read_bundle(bundle_dir).table("effects")
    other = next(m for m in eff["method"] if m != "matching")
    keep = eff[~((eff["method"] == other) & (eff["outcome"] == "promotion"))]
    b = _variant(
        bundle_dir,
        tmp_path / "bundle",
        tables={
            "overlap": pd.DataFrame({"kind": ["cell", "cell", "cell"], "variable": ["educ", "educ", "sector"], "category": ["hoog", "laag", "primair"], "n_treated": [600, 40, 12], "n_control": [2, 900, 0], "w_treated": [600.0, 40.0, 12.0], "w_control": [2.0, 900.0, 0.0], "status": ["sparse", "ok", "empty"]}),
            "effects": keep,
            "not_estimable": pd.DataFrame({"outcome": ["promotion"], "method": [other], "code": ["singular"], "reason": ["LinAlgError: Singular matrix"]}),
        },
        estimates={"estimand": {"statement": {"nl": "Hooggeschoolde POP-gebruikers kunnen niet vergeleken worden.", "en": "High-educated POP users cannot be compared."}}},
    )
    r = Report(b, "nl")
    assert r.has("estimand") and r.has("overlap") and r.has("not_estimable")
    assert r.estimand_statement().startswith("Hooggeschoolde")
    overlap = r.frame("overlap")
    assert overlap.shape[0] == 2  # the cells without comparable users, not the ones that are fine
    assert overlap.iloc[0].tolist() == ["Onderwijsniveau", "Hooggeschoold", "600", SUPPRESSED, label("overlap_sparse", "nl")]
    assert overlap.iloc[1, 3] == "0" and overlap.iloc[1, 4] == label("overlap_empty", "nl")
    frame = r.frame("effects_top2")
    assert (frame == label("not_estimable", "nl")).to_numpy().sum() == 1
    # the reason in the report's language; the software's message stays in the bundle
    assert r.frame("not_estimable").iloc[0].tolist() == [method_label(other, "nl"), r.outcome("promotion"), label("ne_singular", "nl")]
    assert "Singular matrix" not in str(r.table("not_estimable"))
    # the pipeline's structured estimand is stated in the report's language, with the regulation
    plain = Report(bundle_dir, "nl")
    text = str(plain.estimand_statement())
    assert text.startswith("De vergelijking betreft") and "regelgeving" in text
    share = float(read_bundle(bundle_dir).estimates["estimand"]["share_treated_excluded_weighted"])
    assert f"{100 * share:.1f}".replace(".", ",") + "\u00a0%" in text  # a proportion, shown as a percentage
    assert str(Report(bundle_dir, "en").estimand_statement()).startswith("The comparison concerns")
    bare = _variant(bundle_dir, tmp_path / "bare", estimates={"estimand": {}})
    assert not Report(bare, "nl").has("estimand")


def _failure(fn: Any) -> Exception:
    try:
        fn()
    except Exception as exc:  # the failure a method raised, whatever its type
        return exc
    raise AssertionError("expected a failure")


def test_a_failed_method_gets_a_reason_code_worded_in_both_languages(tmp_path: Path) -> None:
    """The pipeline records why a secondary method failed as a code (and the software's message);
    the report has a wording of every code in both languages."""
    import numpy as np

    from analysis.effects.ordinal import ordered_logit
    from analysis.pipeline import NOT_ESTIMABLE_CODES, not_estimable_record

    two = pd.DataFrame({"y": [1, 2, 1, 2, 1, 2], "pop": [0, 1, 0, 1, 1, 0]})
    rec = not_estimable_record("promotion", "ologit", _failure(lambda: ordered_logit(two, "y ~ pop", treat="pop")))
    assert rec["code"] == "too_few_categories" and "three categories" in rec["reason"]
    assert not_estimable_record("stronger", "regression", _failure(lambda: np.linalg.inv(np.zeros((2, 2)))))["code"] == "singular"
    assert not_estimable_record("stronger", "aipw", RuntimeError("something unforeseen"))["code"] == "other"
    codes = [c for c, _ in NOT_ESTIMABLE_CODES] + ["other"]
    for code in codes:
        assert label(f"ne_{code}", "nl") != label(f"ne_{code}", "en"), code
    # a bundle without codes (or with one the report does not know) reads 'other'
    assert set(Report(_tiny_bundle(tmp_path / "b"), "nl")._not_estimable().columns) >= {"code"}


@pytest.fixture(scope="module")
def failed_method_render(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]:
    """The bundle with a method that really failed (an ordered logit on an outcome with two
    answers), rendered to HTML by ``popeval report`` with resource warnings on.

    Returns the bundle, the failure's record and the finished command (its console output).
    """
    import os

    from analysis.effects.ordinal import ordered_logit
    from analysis.pipeline import not_estimable_record

    tmp = tmp_path_factory.mktemp("failed_method")
    two = pd.DataFrame({"y": [1, 2, 1, 2, 1, 2], "pop": [0, 1, 0, 1, 1, 0]})
    rec = not_estimable_record("promotion", "ologit", _failure(lambda: ordered_logit(two, "y ~ pop", treat="pop")))
    eff = read_bundle(bundle_dir).table("effects")
    b = _variant(bundle_dir, tmp / "bundle", tables={"effects": eff[~((eff["method"] == "ologit") & (eff["outcome"] == "promotion"))], "not_estimable": pd.DataFrame([rec])})
    # Python's default warning filters with resource warnings shown: whatever the defaults show, this shows too
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONDEVMODE")}
    env["PYTHONWARNINGS"] = "always::ResourceWarning"
    popeval = str(Path(sys.executable).parent / "popeval")
    proc = subprocess.run(
        [popeval, "report", "--bundle", str(b), "--lang", "nl", "--out", str(tmp / "out"), "--format", "html", "--engine", "python"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return b, rec, proc


def test_dutch_report_words_why_a_method_failed_in_dutch(failed_method_render: tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]) -> None:
    """A method that really failed is listed in the Dutch report with a Dutch reason; the
    software's English message is not shown."""
    b, rec, _ = failed_method_render
    page = (b.parent / "out" / "evaluation-nl.html").read_text(encoding="utf-8")
    table = next(t for t in _tables(page) if t["head"] and t["head"][-1] == [label(k, "nl") for k in ("col_method", "col_outcome", "col_reason")])
    assert table["body"] == [[method_label("ologit", "nl"), Report(b, "nl").outcome("promotion"), label("ne_too_few_categories", "nl")]]
    text = _visible_text(page)
    assert "categories" not in text and "ordered logit" not in text.lower() and rec["reason"][:20] not in text
    words = {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ]+", text)}
    assert not (words & set(ENGLISH)), sorted(words & set(ENGLISH))
    assert read_bundle(b).table("not_estimable")["reason"].tolist() == [rec["reason"]]  # the message stays in the bundle


def test_a_render_prints_no_warning_on_the_console(failed_method_render: tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]) -> None:
    """``popeval report`` closes the kernel, its client and every zmq socket and context: nothing on
    the console but the result, with resource warnings on (the render of
    :func:`failed_method_render`: the whole report, its figures and tables)."""
    b, _, proc = failed_method_render
    assert (b.parent / "out" / "evaluation-nl.html").is_file()
    assert proc.stderr == "", proc.stderr[-3000:]
    assert "Warning" not in proc.stdout and "Unclosed" not in proc.stdout
    assert proc.stdout.startswith("Rendered with python"), proc.stdout[-2000:]


def test_demo_notice_from_provenance(bundle_dir: Path, tmp_path: Path) -> None:
    b = _variant(bundle_dir, tmp_path / "bundle", manifest={"provenance": {"data": "administrative"}})
    assert Report(bundle_dir, "nl").is_demo and not Report(b, "nl").is_demo


# ---------------------------------------------------------------------------- DOCX house style
def test_reference_docx_and_docx_styles(rendered: dict[str, dict[str, Path]]) -> None:
    with zipfile.ZipFile(REPORTS / "_lib" / "reference.docx") as z:
        styles = z.read("word/styles.xml").decode("utf-8")
        doc = z.read("word/document.xml").decode("utf-8")
    assert 'w:w="11906" w:h="16838"' in doc  # A4
    for sid in ("Source", "Callout", "Colofon", "TableCaption", "ImageCaption"):
        assert f'w:styleId="{sid}"' in styles, sid
    with zipfile.ZipFile(rendered["nl"]["docx"]) as z:
        out = z.read("word/document.xml").decode("utf-8")
        names = z.namelist()
    assert "word/footer1.xml" in names and "PAGE" in zipfile.ZipFile(rendered["nl"]["docx"]).read("word/footer1.xml").decode()
    assert 'w:val="Source"' in out and 'w:val="Callout"' in out
    assert "TOC \\" in out  # a table of contents
    descr = re.findall(r'<wp:docPr [^>]*descr="([^"]*)"', out)
    assert len(descr) == 4 and all(len(d) > 60 for d in descr)  # real descriptions, not captions


def test_docx_hyphenates_in_the_report_language(rendered: dict[str, dict[str, Path]]) -> None:
    """Word hyphenates automatically, with the rules of the report's language, and nothing in the
    column headers opts out: a long Dutch column name in a narrow column breaks at a syllable."""
    for lang, code in (("nl", "nl-BE"), ("en", "en-GB")):
        with zipfile.ZipFile(rendered[lang]["docx"]) as z:
            settings = z.read("word/settings.xml").decode("utf-8")
            styles = z.read("word/styles.xml").decode("utf-8")
            doc = z.read("word/document.xml").decode("utf-8")
        auto = re.search(r"<w:autoHyphenation\b([^>]*)/>", settings)
        assert auto and not re.search(r'w:val="(?:false|0|off)"', auto.group(1)), lang
        default = re.search(r"<w:rPrDefault>.*?</w:rPrDefault>", styles, flags=re.S)
        assert default and re.search(rf'<w:lang [^>]*w:val="{code}"', default.group(0)), lang
        assert "suppressAutoHyphens" not in styles + doc
        heads = [re.search(r"<w:tr\b.*?</w:tr>", t, flags=re.S).group(0) for t in re.findall(r"<w:tbl>.*?</w:tbl>", doc, flags=re.S)]  # type: ignore[union-attr]
        assert len(heads) > 10 and not any("<w:lang" in h for h in heads), lang  # no header cell in another language
    assert "Respondenten" in zipfile.ZipFile(rendered["nl"]["docx"]).read("word/document.xml").decode("utf-8")


def test_docx_group_rows_stay_with_their_first_row(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    """In Word a table's group row is kept with the row below it (paragraph style 'Group Row',
    keep with next), so no page ends with a group label."""
    with zipfile.ZipFile(rendered["nl"]["docx"]) as z:
        doc = z.read("word/document.xml").decode("utf-8")
        styles = z.read("word/styles.xml").decode("utf-8")
    style = re.search(r'<w:style [^>]*w:styleId="GroupRow".*?</w:style>', styles, flags=re.S)
    assert style and "<w:keepNext" in style.group(0)
    labels = set(_group_rows(Report(bundle_dir, "nl")))
    rows = re.findall(r"<w:tr\b.*?</w:tr>", doc, flags=re.S)
    group_rows = [r for r in rows if "".join(re.findall(r"<w:t[^>]*>([^<]*)</w:t>", r)) in labels]
    assert len(group_rows) >= 20
    assert all('<w:pStyle w:val="GroupRow"' in r for r in group_rows)
    assert sum('<w:pStyle w:val="GroupRow"' in r for r in rows) == len(group_rows)  # and no other row


def test_alt_text_is_a_description_not_the_caption(rendered: dict[str, dict[str, Path]]) -> None:
    for lang in LANGS:
        html = rendered[lang]["html"].read_text(encoding="utf-8")
        figs = re.findall(r"<figure[^>]*>.*?</figure>", html, flags=re.S)
        assert len(figs) == 4
        for f in figs:
            alt = re.search(r'alt="([^"]*)"', f).group(1)
            cap = _norm(re.sub(r"<[^>]+>", "", re.search(r"<figcaption[^>]*>(.*?)</figcaption>", f, flags=re.S).group(1)))
            assert len(alt) > 80 and alt not in cap, (lang, alt)


# ---------------------------------------------------------------------------- command line and engine
def test_parse_param() -> None:
    assert parse_param("threshold=10") == ("threshold", 10)
    assert parse_param("main_method:weighted") == ("main_method", "weighted")
    with pytest.raises(ConfigError):
        parse_param("=3")


def test_cli_parser() -> None:
    from analysis.cli import make_parser

    args = make_parser().parse_args(["report", "--bundle", "b", "--lang", "en", "-P", "threshold=10", "--format", "html"])
    assert args.command == "report" and args.lang == "en" and args.params == ["threshold=10"] and args.formats == ["html"]


def test_cli_rejects_unknown_language(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        render_report(bundle_dir, lang="fr", out=tmp_path)


def _mini_report(tmp_path: Path) -> Path:
    """A small Quarto project with every feature of the fallback engine's subset."""
    (tmp_path / "_part.qmd").write_text(
        """```{python}
#| include: false
value = 40 + 2
```

The answer is `{python} value` and the word is `{python} word`.
""",
        encoding="utf-8",
    )
    (tmp_path / "_quarto.yml").write_text(f"filters:\n  - {REPORTS / '_lib' / 'popeval.lua'}\nexecute:\n  echo: false\n", encoding="utf-8")
    qmd = tmp_path / "mini.qmd"
    qmd.write_text(
        """---
title: "Mini"
lang: en-GB
---

```{python}
#| tags: [parameters]
word = "default"
```

{{< include _part.qmd >}}

See @tbl-mini and @fig-mini.

::: {.callout-note}
## A notice
Notice text.
:::

::: {.content-visible when-meta="never-set"}
SHOULD-NOT-APPEAR
:::

```{python}
#| label: tbl-mini
#| tbl-cap: "A mini table"
from analysis.report.builder import grid_table
grid_table(["a", "b"], [["1", "2"]], "lr")
```

```{python}
#| label: fig-mini
#| fig-cap: "A mini figure"
#| fig-alt: "A line rising from the lower left to the upper right."
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 1))
ax.plot([0, 1], [0, 1])
plt.show()
```
""",
        encoding="utf-8",
    )
    return qmd


def test_fallback_engine_subset(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Includes, inline expressions, labelled tables and figures with cross-references, callouts,
    content-visible blocks and -P injection after the parameters cell; no kernel warning on the console."""
    qmd = _mini_report(tmp_path)
    bundle = _tiny_bundle(tmp_path / "b")
    res = render_report(bundle, lang="en", out=tmp_path / "out", qmd=qmd, formats=("html",), engine="python", params={"word": "injected"})
    html = _norm(res.outputs["html"].read_text(encoding="utf-8"))
    assert "The answer is 42 and the word is injected." in html
    assert '<a href="#tbl-mini">Table 1</a>' in html and '<a href="#fig-mini">Figure 1</a>' in html
    assert "Table 1: A mini table" in html and "Figure 1: A mini figure" in html
    assert 'class="callout callout-note"' in html and "A notice" in html
    assert "SHOULD-NOT-APPEAR" not in html
    assert 'alt="A line rising from the lower left to the upper right."' in html
    assert "value = 40" not in html  # echo: false from _quarto.yml
    console = capfd.readouterr()
    assert "without encryption" not in console.err + console.out
    bad = tmp_path / "bad.qmd"
    bad.write_text(qmd.read_text(encoding="utf-8").replace("@tbl-mini", "@tbl-missing"), encoding="utf-8")
    from analysis.report.render import RenderError

    with pytest.raises(RenderError):
        render_report(bundle, lang="en", out=tmp_path / "out2", qmd=bad, formats=("html",), engine="python")


def _tiny_bundle(path: Path) -> Path:
    from analysis.bundle import write_bundle

    write_bundle(path, {}, {}, {"config": {}})
    return path


def test_report_sources_are_not_part_of_the_estimation_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing a sentence changes the report's key, never the estimation's."""
    from analysis import pipeline

    repo = Path(pipeline.__file__).resolve().parents[1]
    for folder in ("survey", "analysis", "reports"):
        shutil.copytree(repo / folder, tmp_path / folder, ignore=shutil.ignore_patterns("_output", "__pycache__"))
    monkeypatch.setattr(pipeline, "_REPO", tmp_path)
    est, rep = pipeline.code_version(report=False), pipeline.code_version()
    qmd = tmp_path / "reports" / "evaluation-nl.qmd"
    qmd.write_text(qmd.read_text(encoding="utf-8").replace("Weinig gebruik.", "Beperkt gebruik."), encoding="utf-8")
    for module in ("builder.py", "tables.py"):  # the report room: every module of analysis/report
        (tmp_path / "analysis" / "report" / module).write_text((tmp_path / "analysis" / "report" / module).read_text() + "\n# edited\n")
    assert pipeline.code_version(report=False) == est
    assert pipeline.code_version() != rep
    (tmp_path / "analysis" / "pipeline.py").write_text((tmp_path / "analysis" / "pipeline.py").read_text() + "\n# edited\n")
    assert pipeline.code_version(report=False) != est


# ---------------------------------------------------------------------------- defects that stay fixed
def test_counts_are_whole_numbers_and_match_the_prose(bundle_dir: Path) -> None:
    r = Report(bundle_dir, "nl")
    weights = dict(r.frame("weights").to_numpy().tolist())
    for stat in ("stat_n", "stat_iterations", "stat_collapsed_cells", "stat_n_effective"):
        value = weights[label(stat, "nl")]
        assert re.fullmatch(r"\d{1,3}(\.\d{3})*", value), (stat, value)
    assert weights[label("stat_n_effective", "nl")] == r.fact.n_effective


def test_categories_in_codebook_order_everywhere(bundle_dir: Path) -> None:
    from survey import datamodel

    r = Report(bundle_dir, "nl")
    ages = [c.nl for c in datamodel.AGE_BANDS]
    sizes = [c.nl for c in datamodel.COMPANY_SIZE]
    domains = [c.nl for c in datamodel.TRAINING_DOMAINS]
    for name in ("profile", "margins", "balance"):
        col = r.frame(name).iloc[:, 1].tolist()
        assert [a for a in col if a in ages] == [a for a in ages if a in col], name
        assert [s for s in col if s in sizes] == [s for s in sizes if s in col], name
    shown = r.frame("domains").iloc[:, 0].tolist()
    assert shown == [d for d in domains if d in shown]


def test_no_all_missing_columns(bundle_dir: Path) -> None:
    r = Report(bundle_dir, "nl")
    for name in ("pop_share", "profile", "domains", "flow", "margins", "weights", "balance", "effects_top2", "effects_likert", "summary", "shifts", "sensitivity"):
        frame = r.frame(name)
        for col in range(frame.shape[1]):
            cells = frame.iloc[:, col]
            assert not cells.isin([MISSING, ""]).all(), (name, frame.columns[col])
    assert label("col_vr_after", "nl") not in r.table("balance").columns  # the demo's covariates are all binary


def test_profile_figure_panels_share_one_scale_and_the_report_font(bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")

    from analysis.report.builder import FONT

    shown = []
    monkeypatch.setattr(Report, "show", lambda self, fig: shown.append(fig))
    Report(bundle_dir, "en").figure("profile")
    axes = [a for a in shown[0].axes if a.axison]
    assert {a.get_title(loc="left") for a in axes} == {"Education level", "Age", "Sex", "Employer sector", "Company size"}
    assert len({a.get_xlim() for a in axes}) == 1
    assert {t.get_fontname() for a in axes for t in a.get_yticklabels()} == {FONT}
    assert FONT in (REPORTS / "_lib" / "typst-template.typ").read_text() and FONT in (REPORTS / "_lib" / "dwse.css").read_text()


#: The widths at which the HTML report is measured: a phone and a laptop.
WIDTHS = (390, 1280)


@pytest.fixture(scope="module")
def overflow(rendered: dict[str, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], dict[str, object]]:
    """Both languages' HTML at each of :data:`WIDTHS`, measured in one start of Chromium."""
    pages = [(lang, width) for lang in LANGS for width in WIDTHS]
    got = _pages_overflow([(rendered[lang]["html"], width) for lang, width in pages], tmp_path_factory.mktemp("overflow"))
    return dict(zip(pages, got, strict=True))


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_html_has_no_horizontal_overflow_on_a_phone_or_a_laptop(overflow: dict[tuple[str, int], dict[str, object]], width: int) -> None:
    """In Chromium at 390 px (a phone) and 1280 px, nothing sticks out of the page: wide tables
    scroll sideways inside their own container (their captions stay within the page), and the page
    itself never scrolls sideways."""
    for lang in LANGS:
        got = overflow[(lang, width)]
        assert got["viewport"] == width
        assert got["wide"] == [], (lang, width, got["wide"])
        assert int(got["scroll_width"]) <= width, (lang, width, got)  # type: ignore[call-overload]


@needs_pdftotext
def test_pdf_source_lines_styled_intervals_and_hashes_whole(rendered: dict[str, dict[str, Path]], bundle_dir: Path) -> None:
    pages = _pdf_words(rendered["nl"]["pdf"])
    heights: dict[str, list[float]] = {}
    for _w, _h, words in pages:
        for _x0, y0, _x1, y1, w in words:
            heights.setdefault(w, []).append(y1 - y0)
    body = sorted(heights["de"])[len(heights["de"]) // 2]
    assert max(heights["Bron:"]) < 0.9 * body  # source lines are small print, as in the template
    text = _pdftotext(rendered["nl"]["pdf"], "-layout")
    for line in text.splitlines():
        for m in re.finditer(r"\[[−\d]", line):  # an interval never wraps inside its cell or sentence
            assert "]" in line[m.start() :], line
    for digest in read_bundle(bundle_dir).manifest["inputs"].values():
        sha = digest["sha256"] if isinstance(digest, dict) else digest
        for k in range(0, 64, 16):
            assert sha[k : k + 16] in text, sha


@needs_pdftotext
@pytest.mark.parametrize("lang", LANGS)
def test_pdf_no_half_empty_pages(rendered: dict[str, dict[str, Path]], lang: str, tmp_path: Path) -> None:
    """Every page but the last is filled (text or figure) to more than 55 % of its height: none is half empty."""
    import numpy as np
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "20", "-gray", str(rendered[lang]["pdf"]), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.pgm"))
    assert len(pages) > 8
    for page in pages[:-1]:
        a = np.asarray(Image.open(page))
        h = a.shape[0]
        top, bottom = int(0.06 * h), int(0.9 * h)  # below the running header, above the footer
        rows = np.where((a[top:bottom] < 200).any(axis=1))[0]
        assert len(rows) and (rows.max() + top) / h > 0.55, f"{page.name} is filled to {(rows.max() + top) / h if len(rows) else 0:.0%}"


def test_a_long_path_in_a_table_neither_squeezes_its_column_nor_gains_a_space(tmp_path: Path) -> None:
    import subprocess

    import pypandoc

    from analysis.report.builder import Code, grid_table

    long = "/srv/data/departement-wse/evaluaties/pop-uitzondering/golf-2026/extracten/dwse_aanvragen_2016_2026_definitief.csv"
    t = grid_table(["Instelling", "Waarde"], [[Code("admin.dwse_input.max_inconsistent_share"), Code(long)], [Code("admin.dwse_input.decimal"), Code("")]], "ll")
    md = t.markdown()
    widths = [len(seg) for seg in md.splitlines()[0].strip("+").split("+")]
    assert widths[1] < 2 * widths[0]  # the path is cut after its "/" for the grid: no squeezed setting column
    assert "``" not in md  # an empty setting is an empty cell, not two backticks
    src = tmp_path / "t.md"
    src.write_text(md + "\n", encoding="utf-8")
    lua = Path(__file__).resolve().parents[1] / "reports" / "_lib" / "popeval.lua"
    out = subprocess.run([pypandoc.get_pandoc_path(), str(src), "--lua-filter", str(lua), "-t", "html"], capture_output=True, text=True, check=True).stdout
    assert f"<code>{long}</code>" in out  # one code span again: the path as it is, without a space
