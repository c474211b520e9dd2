"""``popeval run`` with a ``[plans]`` section: from POP files to the report section "Het POP en het POP-attest".

One small synthetic study goes through the newcomer's path: the first run draws the POP sample and
writes blank coder sheets (and says so), a run while the coders are busy says how far they are, the
demo's simulated coders and reconcilers do the coding (``popeval plans simulate --complete``), and the
next run puts the plans tables into the run's bundle without recomputing the survey estimation; a
second wave with the first as its previous bundle shows what changed in the rendered report (the
section's numbers in the whole report, in both languages, are checked by tests/test_report.py, whose
bundle has the POP part too).  No
POP text, masked placeholder, e-mail address, INSZ-like number or POP id may reach the bundle, the
report or the run log.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pop_privacy import assert_no_personal_text
from shared_studies import generated_study
from study_toml import study_settings, write_study_toml

from analysis.cli import main
from analysis.config import load_config
from analysis.pipeline import run

PERSONS = 20_000
SEED = 5
N_SAMPLE = 160


def _config(path: Path, study: Path, derived: Path, previous: Path | None = None, render: bool = False) -> Path:
    plans = {
        "texts": (study / "plans" / "pop_texts.parquet").as_posix(),
        "trainings": (study / "plans" / "trainings.csv").as_posix(),
        "strata": ["incentive"],
        "sample_size": N_SAMPLE,
        "bootstrap": 100,
    }
    if previous is not None:
        plans["previous"] = previous.as_posix()
    settings = study_settings("plansrun", derived, generated=study, replicates=4, methods=("matching", "regression", "naive"),
                              report={"render": render, "formats": ["html"]}, plans=plans)
    return write_study_toml(path, settings)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The study and the state after each run of the newcomer's path."""
    base = tmp_path_factory.mktemp("plans_run")
    study = generated_study(PERSONS, SEED, plans=True)
    cfg_path = base / "study.toml"
    # a short derived folder: the report kernel's IPC socket lives under the run folder, and a socket
    # path is limited to about 100 characters
    derived = Path(tempfile.mkdtemp(prefix="pr"))
    _config(cfg_path, study, derived)
    first = run(load_config(cfg_path), progress=False)
    waiting = run(load_config(cfg_path), progress=False)
    assert main(["plans", "simulate", "--config", str(cfg_path), "--truth", str(study / "truth"), "--complete"]) == 0
    coded = run(load_config(cfg_path), progress=False)
    yield {"base": base, "study": study, "cfg": cfg_path, "first": first, "waiting": waiting, "coded": coded, "derived": derived}
    shutil.rmtree(derived, ignore_errors=True)


def _texts(study: Path) -> pd.DataFrame:
    return pd.read_parquet(study / "plans" / "pop_texts.parquet")


def test_first_run_writes_the_sample_and_blank_sheets_and_says_what_next(world: dict[str, Any]) -> None:
    first, waiting = world["first"], world["waiting"]
    wd = world["derived"] / "plans"
    assert (wd / "sample.csv").exists() and sorted(p.name for p in (wd / "sheets").glob("coder_*.xlsx")) == ["coder_A.xlsx", "coder_B.xlsx"]
    msg = next(w for w in first.warnings if w.startswith("POP part"))
    assert "coding sheets" in msg and str(wd / "sheets") in msg and "run again" in msg
    assert "POP part" in first.summary()
    from analysis.bundle import read_bundle

    b = read_bundle(first.bundle)
    assert not [t for t in b.tables if t.startswith("plans_")]
    assert b.manifest["plans"] == {"state": "sheets_written"}
    # the second run: the sheets exist (nothing overwritten) and nobody has coded yet
    msg2 = next(w for w in waiting.warnings if w.startswith("POP part"))
    assert f"A 0/{N_SAMPLE}" in msg2 and f"B 0/{N_SAMPLE}" in msg2
    assert {"ingest+link", "design", "outcomes"} <= set(waiting.reused)
    assert waiting.run_dir != first.run_dir  # the sheets are new inputs: another run


def test_coded_run_puts_the_plans_tables_in_the_bundle_without_reestimating(world: dict[str, Any]) -> None:
    from analysis.bundle import read_bundle
    from analysis.plans.tables import PLANS_TABLES
    from survey.hashing import sha256_file

    coded = world["coded"]
    assert {"ingest+link", "survey", "design", "outcomes"} <= set(coded.reused)  # the estimation's keys ignore the POP part
    assert "plans" in coded.computed
    assert not [w for w in coded.warnings if w.startswith("POP part")]
    b = read_bundle(coded.bundle)
    assert set(PLANS_TABLES) <= set(b.tables) and "effects" in b.tables
    m = b.manifest
    assert m["plans"]["state"] == "coded" and m["plans"]["sample"]["n"] == N_SAMPLE
    sheets = world["derived"] / "plans" / "sheets"
    for name in ("coder_A.xlsx", "coder_B.xlsx", "reconciliation.xlsx"):
        assert m["inputs"][f"plans/sheets/{name}"]["sha256"] == sha256_file(sheets / name)
    assert m["inputs"]["plans/trainings"]["sha256"] == sha256_file(world["study"] / "plans" / "trainings.csv")
    assert m["inputs"]["plans/sample"]["sha256"] == sha256_file(world["derived"] / "plans" / "sample.csv")
    assert m["inputs"]["plans/texts"]["sha256"] == sha256_file(world["study"] / "plans" / "pop_texts.parquet")
    # every sheet a person reads holds masked text only
    from openpyxl import load_workbook

    masked = 0
    for name in ("coder_A.xlsx", "coder_B.xlsx", "reconciliation.xlsx"):
        cells = "\n".join(str(v) for ws in load_workbook(sheets / name, read_only=True) for row in ws.iter_rows(values_only=True) for v in row if v)
        assert not re.search(r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", cells) and "@voorbeeld.be" not in cells, name
        masked += cells.count("[INSZ]") + cells.count("[e-mail]")
    assert masked > 0  # the sample holds POPs with personal data, and they were masked
    # a rerun reuses the POP part too and writes the same bundle
    before = {f.name: sha256_file(f) for f in (coded.bundle / "tables").glob("plans_*.csv")} | {"manifest.json": sha256_file(coded.bundle / "manifest.json")}
    again = run(load_config(world["cfg"]), progress=False)
    assert "plans" in again.reused and again.run_dir == coded.run_dir
    assert {f.name: sha256_file(f) for f in (again.bundle / "tables").glob("plans_*.csv")} | {"manifest.json": sha256_file(again.bundle / "manifest.json")} == before
    # the simulated coders disagree realistically: on some POPs, not all (which codes err more is a
    # property of the error model, tested on a large sample in tests/test_plans.py)
    agr = b.tables["plans_agreement"].set_index("code")
    assert (agr["percent_agreement"] < 1).all() and (agr["percent_agreement"] > 0.75).all()


def test_no_pop_text_in_bundle_or_run_log(world: dict[str, Any]) -> None:
    run_dir = world["coded"].run_dir
    files = [p for p in (run_dir / "bundle").rglob("*") if p.is_file()] + [run_dir / "run.log"]
    blob = "\n".join(p.read_text(encoding="utf-8") for p in files)
    assert "POP part" in (run_dir.parent / world["first"].run_dir.name / "run.log").read_text(encoding="utf-8")
    assert_no_personal_text(blob, world["study"])


def test_second_wave_shows_what_changed_in_the_rendered_report(world: dict[str, Any]) -> None:
    from analysis.bundle import read_bundle
    from analysis.plans.tables import read_plans_tables, write_plans_tables

    base = world["base"]
    previous = base / "wave1"
    # the previous wave: this wave's plans tables with every share 0.05 lower (a plans bundle of its own)
    tabs = read_plans_tables(world["coded"].bundle)
    for c in ("estimate", "ci_lower", "ci_upper"):
        tabs["plans_estimates"][c] = tabs["plans_estimates"][c] - 0.05
    write_plans_tables(previous, tabs, {"codebook_version": "wave 1"})
    cfg2 = base / "wave2.toml"
    _config(cfg2, world["study"], world["derived"], previous=previous, render=True)
    res = run(load_config(cfg2), progress=False)
    assert "plans" in res.computed and "outcomes" in res.reused
    b = read_bundle(res.bundle)
    ch = b.tables["plans_changes"].set_index(["measure", "estimator"])
    est = b.tables["plans_estimates"]
    prev = read_bundle(previous).tables["plans_estimates"]
    for m in ("no_training", "mismatch"):
        now = est[(est["measure"] == m) & (est["estimator"] == "design") & (est["stratum"] == "alle")]["estimate"].iloc[0]
        was = prev[(prev["measure"] == m) & (prev["estimator"] == "design") & (prev["stratum"] == "alle")]["estimate"].iloc[0]
        assert ch.loc[(m, "design"), "difference"] == pytest.approx(now - was, abs=1e-12) == pytest.approx(0.05, abs=1e-9)
        assert ch.loc[(m, "design"), "previous"] == pytest.approx(was, abs=1e-12)
    assert np.all(ch["ci_lower"] <= ch["difference"]) and np.all(ch["difference"] <= ch["ci_upper"])
    assert b.manifest["inputs"]["plans/previous"]["file"] == "manifest.json"
    html = Path(res.report["html"]).read_text(encoding="utf-8")
    assert "Evolutie tegenover de vorige meting" in html and "Eerste meting" not in html
    assert_no_personal_text(html, world["study"])


def test_demo_coding_is_idempotent_and_changed_texts_are_refused(world: dict[str, Any], tmp_path: Path) -> None:
    from analysis.plans.stage import advance
    from survey.errors import DataValidationError
    from survey.hashing import sha256_file

    sheets = world["derived"] / "plans" / "sheets"
    before = {p.name: sha256_file(p) for p in sheets.glob("*.xlsx")}
    assert main(["plans", "simulate", "--config", str(world["cfg"]), "--truth", str(world["study"] / "truth"), "--complete"]) == 0
    assert {p.name: sha256_file(p) for p in sheets.glob("*.xlsx")} == before  # a second `make demo` changes nothing
    # the texts change after the sample was drawn: a clear error, and nothing of the coders' work is touched
    texts = _texts(world["study"])
    texts.loc[0, "text"] = texts.loc[0, "text"] + "\nAanvulling."
    changed = tmp_path / "pop_texts.parquet"
    texts.to_parquet(changed, index=False)
    cfg = load_config(world["cfg"])
    import dataclasses

    cfg = dataclasses.replace(cfg, plans=dataclasses.replace(cfg.plans, texts=str(changed)))
    with pytest.raises(DataValidationError) as e:
        advance(cfg)
    msg = str(e.value)
    assert "changed after the sample was drawn" in msg and "pop_texts.parquet" in msg and "--overwrite" in msg
    assert "Aanvulling" not in msg
    assert {p.name: sha256_file(p) for p in sheets.glob("*.xlsx")} == before


def test_pop_part_sources_are_not_part_of_the_estimation_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing the POP part's code changes its own key, never the survey estimation's."""
    from analysis import pipeline

    repo = Path(pipeline.__file__).resolve().parents[1]
    for folder in ("survey", "analysis", "reports"):
        shutil.copytree(repo / folder, tmp_path / folder, ignore=shutil.ignore_patterns("_output", "__pycache__"))
    monkeypatch.setattr(pipeline, "_REPO", tmp_path)
    est, plans = pipeline.code_version(report=False, plans=False), pipeline.code_version(report=False)
    f = tmp_path / "analysis" / "plans" / "estimates.py"
    f.write_text(f.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert pipeline.code_version(report=False, plans=False) == est
    assert pipeline.code_version(report=False) != plans
    g = tmp_path / "analysis" / "estimation.py"
    g.write_text(g.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert pipeline.code_version(report=False, plans=False) != est


def test_an_invalid_code_stops_the_run_naming_sheet_row_and_column(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import load_workbook

    sheet = world["derived"] / "plans" / "sheets" / "coder_B.xlsx"
    original = sheet.read_bytes()
    try:
        wb = load_workbook(sheet)
        ws = wb["codering"]
        col = [c.value for c in ws[1]].index("goal_talent") + 1
        ws.cell(row=5, column=col, value="misschien")
        wb.save(sheet)
        assert main(["run", "--config", str(world["cfg"]), "--no-progress", "--no-report"]) == 2
        err = capsys.readouterr().err
        assert "coder_B.xlsx" in err and "row 5" in err and "goal_talent" in err and "misschien" in err
        assert "Traceback" not in err
        assert_no_personal_text(err, world["study"])
    finally:
        sheet.write_bytes(original)
