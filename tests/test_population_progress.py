"""The admin population's steps report their progress, and the set-based counts equal row-by-row ones.

Progress: every step (ingest, link, margins, profile) gives a line per stage to a callable, prints
to standard error when asked, and is quiet by default when standard error is not a terminal (tests,
logs, pipes).  The counts: the person-level aggregates that replaced joins and window functions are
checked against a brute-force pandas computation on the generated files.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from analysis.population import ingest, link, margins, profile

SNAP = Path("survey") / "461283" / "20230704T080000Z"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from analysis.synth import generate

    out = tmp_path_factory.mktemp("progress_study")
    generate(persons=4_000, seed=11, out=out)
    return {"out": out}


def _paths(out: Path) -> tuple[Path, Path]:
    return out / "admin" / "dwse_applications.csv", out / "admin" / "vdab_trajectories.csv"


def test_each_step_reports_its_stages(small: dict, tmp_path: Path) -> None:
    out = small["out"]
    lines: list[str] = []
    db = tmp_path / "p.duckdb"
    ingest(*_paths(out), db, progress=lines.append)
    link(db, out / SNAP, progress=lines.append)
    margins(db, progress=lines.append)
    profile(db, progress=lines.append)
    text = "\n".join(lines)
    for stage in (
        "dwse_applications: read",
        "dwse_applications: every column scanned for INSZ",
        "dwse_applications: codes mapped and every value validated",
        "vdab_trajectories: keys unique, checks across fields done",
        "link: population built",
        "link: DWSE persons accounted for",
        "link: VDAB persons and survey participants linked",
        "margins: 9 margins of",
        "profile: POP shares counted",
        "profile: training domains counted",
    ):
        assert stage in text, stage
    # every line ends with the seconds since the step started
    assert all(line.rstrip().endswith(" s)") for line in lines)


def test_quiet_unless_standard_error_is_a_terminal(small: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = small["out"]
    db = tmp_path / "q.duckdb"
    ingest(*_paths(out), db)
    link(db, out / SNAP)
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    margins(db)
    link(db, out / SNAP, progress=False)  # False: quiet even on a terminal
    assert "margins: 9 margins of" in term.getvalue()
    assert "link:" not in term.getvalue()


def test_guidance_users_with_a_later_pop_application_equal_a_row_by_row_join(small: dict, tmp_path: Path) -> None:
    out = small["out"]
    db = tmp_path / "j.duckdb"
    ingest(*_paths(out), db)
    p = profile(db)
    dwse = pd.read_csv(_paths(out)[0], dtype=str)
    vdab = pd.read_csv(_paths(out)[1], dtype=str)
    ok = dwse[(dwse["status"] == "goedgekeurd") & (dwse["pop_based"] == "1")]
    pairs = vdab[["person_key", "start_date"]].merge(ok[["person_key", "application_date"]], on="person_key")
    later = set(pairs.loc[pairs["application_date"] >= pairs["start_date"], "person_key"])
    lbc = p.pop_share.set_index("incentive").loc["LBC"]
    assert int(lbc["total"]) == vdab["person_key"].nunique()
    assert int(lbc["pop_based"]) == len(later) > 0


def test_latest_application_and_composition_equal_a_sort(small: dict, tmp_path: Path) -> None:
    from survey.datamodel import age_band

    out = small["out"]
    db = tmp_path / "c.duckdb"
    ingest(*_paths(out), db)
    p = profile(db, threshold=1)
    dwse = pd.read_csv(_paths(out)[0], dtype=str)
    ok = dwse[dwse["status"] == "goedgekeurd"].sort_values(["person_key", "application_date", "application_id"])
    latest = ok.groupby("person_key").tail(1).set_index("person_key")
    pop_users = set(ok.loc[ok["pop_based"] == "1", "person_key"])
    latest["age_band"] = [age_band(int(d[:4]) - int(b)) for d, b in zip(latest["application_date"], latest["birth_year"], strict=True)]
    comp = p.composition.set_index(["variable", "category"])
    for var in ("educ", "age_band", "sector", "sex", "company_size"):
        counts = latest[var].value_counts()
        pop_counts = latest.loc[latest.index.isin(pop_users), var].value_counts()
        for cat, n in counts.items():
            assert int(comp.loc[(var, cat), "all_users"]) == int(n), (var, cat)
            assert int(comp.loc[(var, cat), "pop_users"]) == int(pop_counts.get(cat, 0)), (var, cat)
