"""The POP part (analysis.plans): texts in, sample, sheets, agreement, concordance, estimates, tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_studies import generated_study
from study_toml import study_settings, write_study_toml

from analysis.cli import main
from analysis.plans.agreement import (
    agreement,
    cohen_kappa,
    disagreements,
    krippendorff_alpha,
    percent_agreement,
    reconcile,
)
from analysis.plans.codebook import CODEBOOK, GOALS
from analysis.plans.concordance import concordance, normalise_name
from analysis.plans.frame import build_frame, mask_personal, read_texts
from analysis.plans.sample import allocate, draw_sample
from analysis.plans.sheets import read_sheets, write_sheets
from survey.errors import DataValidationError

PERSONS = 20_000
SEED = 5


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic study with POP texts and a study configuration with a [plans] section."""
    import shutil

    out = tmp_path_factory.mktemp("plans_study") / "study"
    shutil.copytree(generated_study(PERSONS, SEED, plans=True), out)  # the commands write into the study folder
    write_study_toml(out / "study.toml", study_settings(
        "plans",
        survey={"survey_id": 461283},
        admin={"dwse": "admin/dwse_applications.csv", "vdab": "admin/vdab_trajectories.csv"},
        plans={"texts": "plans/pop_texts.parquet", "trainings": "plans/trainings.csv", "strata": ["incentive"], "sample_size": 160, "bootstrap": 100},
    ))
    return out


@pytest.fixture(scope="module")
def inputs(study: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
    from survey.validate import read_table

    texts = read_texts(study / "plans" / "pop_texts.parquet")
    traj = read_table(study / "admin" / "vdab_trajectories.csv", VDAB_TRAJECTORIES)
    dwse = read_table(study / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    return texts, traj, dwse


# ---------------------------------------------------------------- codebook and generator


def test_codebook_codes_and_rules() -> None:
    assert CODEBOOK.names == (*GOALS, "training_recommended", "reason_derivable", "attest_match")
    assert CODEBOOK["attest_match"].allowed == ("match", "mismatch", "onbepaald")
    assert CODEBOOK["goal_talent"].label("en") == "Career goal: talent development"
    ok = dict.fromkeys(GOALS, "ja") | {"training_recommended": "nee", "reason_derivable": "nvt", "attest_match": "onbepaald"}
    assert CODEBOOK.check_consistency(ok) is None
    assert "must be 'nvt'" in (CODEBOOK.check_consistency(ok | {"reason_derivable": "ja"}) or "")
    assert "cannot be 'nvt'" in (CODEBOOK.check_consistency(ok | {"training_recommended": "ja"}) or "")
    assert set(CODEBOOK.to_frame()["code"]) == set(CODEBOOK.names)


def test_generated_pops_follow_the_study(study: Path, inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    texts, traj, dwse = inputs
    truth = pd.read_parquet(study / "truth" / "plans_codes.parquet")
    assert len(texts) == int(traj["pop_made"].astype(bool).sum()) == len(truth)
    frame, counts = build_frame(texts, traj, dwse, "attest")
    t = frame[["pop_id"]].merge(truth.rename(columns={"trajectory_id": "pop_id"}), on="pop_id")
    assert 0.15 < (t["training_recommended"] == "nee").mean() < 0.30  # about two in ten
    rec = t[t["training_recommended"] == "ja"]
    assert 0.35 < (rec["reason_derivable"] == "nee").mean() < 0.55  # just under half
    assert 0.12 < (t["attest_match"] == "mismatch").mean() < 0.23  # 17.5 %
    assert (truth.loc[truth["training_recommended"] == "nee", "reason_derivable"] == "nvt").all()
    assert dict(zip(counts["step"], counts["n"], strict=True))["POPs in the frame"] == len(frame)
    # accents, typos and personal data that the masking must catch
    joined = "\n".join(texts["text"])
    assert "ë" in joined or "é" in joined
    assert re.search(r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", joined)
    assert "@voorbeeld.be" in joined
    masked = "\n".join(texts["text"].map(mask_personal))
    assert not re.search(r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", masked)
    assert "@" not in masked and "[INSZ]" in masked and "[e-mail]" in masked


def test_generator_is_deterministic(study: Path, tmp_path: Path) -> None:
    import shutil

    from analysis.plans.synth import generate_plans

    shutil.copytree(study / "admin", tmp_path / "admin")
    generate_plans(tmp_path, seed=SEED)
    a = pd.read_parquet(study / "plans" / "pop_texts.parquet")
    b = pd.read_parquet(tmp_path / "plans" / "pop_texts.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_mask_personal_variants() -> None:
    s = "INSZ 85.07.30-033.61, ook 85073003361 of 85 07 30 033 61; mail an.peeters+pop@werk.vlaanderen.be. Sinds 2019 (12 jaar)."
    m = mask_personal(s)
    assert m.count("[INSZ]") == 3 and "[e-mail]" in m and "2019" in m and "12 jaar" in m
    # other ways of writing them: slashes, 6-3-2 groups, "[at]", "(at)"/"(dot)", " at "
    m2 = mask_personal("rr 85/07/30-033/61 en 850730 033 61; an.peeters [at] werk.be, jan(at)vdab(dot)be, els at Hotmail.com")
    assert m2 == "rr [INSZ] en [INSZ]; [e-mail], [e-mail], [e-mail]"
    # not personal: dates, years, 10-digit phone numbers, web sites and ordinary "at"
    keep = "Op 30.07.2023 (2019-2023), bel 0470 12 34 56, zie www.vdab.be; werk at home."
    assert mask_personal(keep) == keep


# ---------------------------------------------------------------- input formats


def test_read_texts_folder_and_table(tmp_path: Path) -> None:
    import docx

    d = tmp_path / "pops"
    (d / "sub").mkdir(parents=True)
    (d / "LBT00000001.txt").write_text("Actieplan: opleiding Graduaat boekhouden.", encoding="utf-8")
    doc = docx.Document()
    doc.add_paragraph("Ik volg de bachelor verpleegkunde.")
    doc.save(str(d / "sub" / "LBT00000002.docx"))
    import typst

    (tmp_path / "pop.typ").write_text("Actieplan: ik volg de opleiding Rijbewijs C bij Syntra West.", encoding="utf-8")
    typst.compile(str(tmp_path / "pop.typ"), output=str(d / "LBT00000004.pdf"))
    t = read_texts(d)
    assert list(t["pop_id"]) == ["LBT00000001", "LBT00000004", "LBT00000002"]
    assert "verpleegkunde" in t["text"].iloc[2]
    assert "Rijbewijs C bij Syntra West" in t["text"].iloc[1]
    (d / "LBT00000005.pdf").write_bytes(b"not a pdf")
    with pytest.raises(DataValidationError, match="cannot be read") as e:
        read_texts(d)
    assert "LBT00000005.pdf" in str(e.value)
    pd.DataFrame({"id": ["LBT00000003"], "tekst": ["Opleiding: Rijbewijs C"]}).to_csv(tmp_path / "pops.csv", index=False)
    t2 = read_texts(tmp_path / "pops.csv", id_column="id", text_column="tekst")
    assert t2.iloc[0].to_dict() == {"pop_id": "LBT00000003", "text": "Opleiding: Rijbewijs C"}


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ({"trajectory_id": ["LBT00000001", "LBT00000001"], "text": ["a", "b"]}, "Duplicate POP id"),
        ({"trajectory_id": ["X1"], "text": ["a"]}, "not a trajectory id"),
        ({"trajectory_id": ["LBT00000001"], "text": [" "]}, "empty"),
    ],
)
def test_read_texts_errors_name_file_and_row(tmp_path: Path, rows: dict[str, list[str]], needle: str) -> None:
    p = tmp_path / "pops.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    with pytest.raises(DataValidationError) as e:
        read_texts(p)
    msg = str(e.value)
    assert needle in msg and "pops.csv" in msg and "row" in msg


def test_unknown_trajectory_is_an_error(inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    texts, traj, dwse = inputs
    bad = pd.concat([texts.head(3), pd.DataFrame({"pop_id": ["LBT99999999"], "text": ["x"]})], ignore_index=True)
    with pytest.raises(DataValidationError, match="no VDAB trajectory") as e:
        build_frame(bad, traj, dwse)
    assert "row 4" in str(e.value)


# ---------------------------------------------------------------- sample


def test_allocation_and_inclusion_probabilities(inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    sizes = pd.Series({"a": 1000, "b": 30, "c": 3})
    assert allocate(sizes, 90, "equal").to_dict() == {"a": 57, "b": 30, "c": 3}
    assert allocate(sizes, 100, "proportional").sum() == 100
    texts, traj, dwse = inputs
    frame, _ = build_frame(texts, traj, dwse)
    s = draw_sample(frame, 120, ["incentive"], seed=3)
    assert s.nobs == 120 and s.units["pop_id"].is_unique
    for h, g in s.units.groupby("stratum"):
        N_h = int((frame["incentive"] == h).sum())
        assert (g["N_h"] == N_h).all() and np.allclose(g["pi"], len(g) / N_h)
    assert np.isclose(s.units["weight"].sum(), len(frame))
    # the same sample whatever the frame's row order
    s2 = draw_sample(frame.sample(frac=1.0, random_state=1), 120, ["incentive"], seed=3)
    assert list(s.units["pop_id"]) == list(s2.units["pop_id"])


# ---------------------------------------------------------------- agreement against independent implementations


def _ratings(rng: np.random.Generator, n: int, m: int, k: int, p_agree: float) -> np.ndarray:
    base = rng.integers(0, k, n)
    r = np.where(rng.random((n, m)) < p_agree, base[:, None], rng.integers(0, k, (n, m)))
    return np.array([[f"c{v}" for v in row] for row in r], dtype=object)


@pytest.mark.parametrize(("m", "k", "seed"), [(2, 2, 1), (2, 3, 2), (3, 3, 3), (4, 2, 4)])
def test_agreement_equals_independent_implementations(m: int, k: int, seed: int) -> None:
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    r = _ratings(np.random.default_rng(seed), 150, m, k, 0.7)
    codes = pd.factorize(r.ravel(), sort=True)[0].reshape(r.shape)
    alpha_ref = krippendorff.alpha(reliability_data=codes.T.astype(float), level_of_measurement="nominal")
    assert krippendorff_alpha(r) == pytest.approx(alpha_ref, abs=1e-12)
    kappas = [cohen_kappa_score(r[:, a], r[:, b]) for a in range(m) for b in range(a + 1, m)]
    assert cohen_kappa(r) == pytest.approx(float(np.mean(kappas)), abs=1e-12)
    pairs = [(r[:, a] == r[:, b]).mean() for a in range(m) for b in range(a + 1, m)]
    assert percent_agreement(r) == pytest.approx(float(np.mean(pairs)), abs=1e-12)


def test_kappa_against_statsmodels() -> None:
    from statsmodels.stats.inter_rater import cohens_kappa

    r = _ratings(np.random.default_rng(9), 200, 2, 3, 0.6)
    table = pd.crosstab(r[:, 0], r[:, 1]).to_numpy()
    assert cohen_kappa(r) == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)


def _coded(r: np.ndarray, code: str = "goal_talent") -> pd.DataFrame:
    n, m = r.shape
    return pd.DataFrame({"coder": np.repeat([f"C{j}" for j in range(m)], n), "pop_id": np.tile([f"P{i:03d}" for i in range(n)], m), code: r.T.ravel()})


def test_bootstrap_intervals_bracket_the_estimate() -> None:
    vals = np.where(_ratings(np.random.default_rng(5), 120, 2, 2, 0.8) == "c0", "ja", "nee")
    coded = _coded(vals)
    from analysis.plans.codebook import Codebook

    cb = Codebook((CODEBOOK["goal_talent"],))
    res = agreement(coded, codebook=cb, n_boot=300, seed=1).table.iloc[0]
    for k in ("percent_agreement", "kappa", "alpha"):
        assert res[f"{k}_lower"] < res[k] < res[f"{k}_upper"]
    assert res["kappa_upper"] - res["kappa_lower"] < 0.4


def test_reconcile_rules() -> None:
    from analysis.plans.codebook import Codebook

    cb = Codebook((CODEBOOK["goal_talent"],))
    three = _coded(np.array([["ja", "ja", "nee"], ["nee", "nee", "nee"]], dtype=object))
    out = reconcile(three, codebook=cb)
    assert list(out["goal_talent"]) == ["ja", "nee"]
    two = _coded(np.array([["ja", "nee"], ["nee", "nee"]], dtype=object))
    dis = disagreements(two, codebook=cb)
    assert dis.to_dict("records") == [{"pop_id": "P000", "code": "goal_talent", "coder_C0": "ja", "coder_C1": "nee"}]
    with pytest.raises(DataValidationError, match="not reconciled"):
        reconcile(two, codebook=cb)
    fixed = reconcile(two, pd.DataFrame({"pop_id": ["P000"], "code": ["goal_talent"], "value": ["nee"]}), codebook=cb)
    assert list(fixed["goal_talent"]) == ["nee", "nee"]


# ---------------------------------------------------------------- sheets


def _units() -> pd.DataFrame:
    return pd.DataFrame(
        {"pop_id": ["LBT00000001", "LBT00000002", "LBT00000003"], "text": ["tekst een", "tekst twee", "tekst drie"], "attest_training": ["Rijbewijs C", None, "Zorgkundige"]}
    )


def _fill(path: Path, values: dict[str, dict[str, str]]) -> None:
    from analysis.plans.sheets import fill_sheet

    fill_sheet(path, lambda pid: values[pid])


GOOD = dict.fromkeys(GOALS, "nee") | {"training_recommended": "ja", "reason_derivable": "ja", "attest_match": "match"}


def test_sheets_round_trip_blind_with_dropdowns(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    paths = write_sheets(tmp_path, _units(), ["A", "B"], seed=1)
    wb = load_workbook(paths[0])
    ws = wb["codering"]
    assert [c.value for c in ws[1]][:4] == ["pop_id", "pop_tekst", "attest_opleiding", "goal_talent"]
    assert len(ws.data_validations.dataValidation) == len(CODEBOOK.codes)
    assert "PERSOONSGEGEVENS" in wb["LEESMIJ"]["A1"].value
    assert "persoonsgegevens" in wb.properties.keywords and wb.properties.description.startswith("BEVAT PERSOONSGEGEVENS")
    assert all(ws.cell(row=r, column=4).value is None for r in range(2, 5))  # nothing pre-filled
    _fill(paths[0], {i: GOOD for i in _units()["pop_id"]})
    _fill(paths[1], {i: GOOD | ({"goal_talent": "ja"} if i.endswith("2") else {}) for i in _units()["pop_id"]})
    coded = read_sheets(paths, list(_units()["pop_id"]))
    assert len(coded) == 6 and set(coded["coder"]) == {"A", "B"}
    assert disagreements(coded)[["pop_id", "code"]].to_dict("records") == [{"pop_id": "LBT00000002", "code": "goal_talent"}]
    with pytest.raises(DataValidationError, match="already exist"):
        write_sheets(tmp_path, _units(), ["A", "B"])


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("goal_talent", "misschien"), "invalid code 'misschien'"),
        (("goal_talent", None), "empty cell"),
        (("pop_id", "LBT00000099"), "unknown POP id"),
        (("pop_id", "LBT00000001"), "duplicate POP id"),
        (("reason_derivable", "nvt"), "cannot be 'nvt'"),
    ],
)
def test_sheet_errors_name_sheet_row_and_column(tmp_path: Path, edit: tuple[str, str | None], needle: str) -> None:
    from openpyxl import load_workbook

    paths = write_sheets(tmp_path, _units(), ["A", "B"], seed=1)
    for p in paths:
        _fill(p, {i: GOOD for i in _units()["pop_id"]})
    wb = load_workbook(paths[1])
    ws = wb["codering"]
    header = [c.value for c in ws[1]]
    row = next(r for r in range(2, 5) if ws.cell(row=r, column=1).value != "LBT00000001")
    ws.cell(row=row, column=header.index(edit[0]) + 1).value = edit[1]
    wb.save(paths[1])
    with pytest.raises(DataValidationError) as e:
        read_sheets(paths, list(_units()["pop_id"]))
    msg = str(e.value)
    assert needle in msg and "coder_B.xlsx" in msg and f"row {row}" in msg and "codering" in msg
    if edit[0] != "pop_id" and edit[1] is not None and edit[1] != "nvt":
        assert f"column '{edit[0]}" in msg


# ---------------------------------------------------------------- concordance


def test_concordance_flags() -> None:
    frame = pd.DataFrame(
        {
            "pop_id": ["LBT00000001", "LBT00000002", "LBT00000003", "LBT00000004"],
            "attest_training_id": ["OPL000001", "OPL000001", "OPL000002", "OPL000001"],
            "followed_training_id": ["OPL000001", "OPL000002", None, "OPL000001"],
        }
    )
    texts = pd.DataFrame(
        {
            "pop_id": frame["pop_id"],
            "text": [
                "Actie: inschrijven voor bachelor verpleegkunde bij HOGENT.",
                "Ik ga de opleiding 'Graduaat boekhoudne' volgen.",
                "Geen opleiding voorzien.",
                "Ik schrijf me in voor de opleiding Ba. verpleegkunde, zodat ik kan doorgroeien.",
            ],
        }
    )
    cat = pd.DataFrame({"training_id": ["OPL000001", "OPL000002"], "training_name": ["Bachelor in de verpleegkunde", "Graduaat boekhouden"]})
    out = concordance(frame, texts, cat).set_index("pop_id")
    assert list(out["auto_attest_match"]) == ["match", "mismatch", "onbepaald", "match"]
    assert list(out["auto_followed_match"]) == ["match", "match", "geen_aanvraag", "match"]
    assert list(out["attest_vs_followed"]) == ["zelfde", "verschillend", "geen_aanvraag", "zelfde"]
    assert normalise_name("Bachelor in de Verpleegkunde") == normalise_name("ba. verpleegkunde")


# ---------------------------------------------------------------- estimates against the textbook formulas


def test_design_estimate_equals_stratified_formula() -> None:
    from analysis.plans.estimates import combined_estimate, design_estimates

    rng = np.random.default_rng(4)
    N = {"a": 400, "b": 100}
    rows = []
    for h, Nh in N.items():
        for i in range(30):
            rows.append({"pop_id": f"{h}{i}", "stratum": h, "N_h": Nh, "weight": Nh / 30})
    codes = pd.DataFrame(rows)
    codes["training_recommended"] = np.where(rng.random(len(codes)) < np.where(codes["stratum"] == "a", 0.2, 0.5), "nee", "ja")
    codes["reason_derivable"] = np.where(codes["training_recommended"] == "ja", "ja", "nvt")
    for g in GOALS:
        codes[g] = "nee"
    codes["attest_match"] = np.where(rng.random(len(codes)) < 0.2, "mismatch", "match")
    est = design_estimates(codes).set_index(["measure", "stratum"])
    y = (codes["training_recommended"] == "nee").astype(float)
    Wh = {h: Nh / 500 for h, Nh in N.items()}
    mean = sum(Wh[h] * y[codes["stratum"] == h].mean() for h in N)
    var = sum(Wh[h] ** 2 * (1 - 30 / N[h]) * y[codes["stratum"] == h].var(ddof=1) / 30 for h in N)
    assert est.loc[("no_training", "alle"), "estimate"] == pytest.approx(mean, abs=1e-12)
    assert est.loc[("no_training", "alle"), "bse"] == pytest.approx(np.sqrt(var), rel=1e-9)
    # combined estimator with perfect flags: exactly the census share, zero variance
    frame_ids = pd.DataFrame({"pop_id": [f"{h}{i}" for h, Nh in N.items() for i in range(Nh)]})
    frame_ids["stratum"] = frame_ids["pop_id"].str[0]
    flags = frame_ids[["pop_id"]].assign(auto_attest_match="match")
    flags.loc[flags["pop_id"].isin(codes.loc[codes["attest_match"] == "mismatch", "pop_id"]), "auto_attest_match"] = "mismatch"
    comb = combined_estimate(codes, flags, frame_ids).set_index(["stratum", "estimator"])
    share = (flags["auto_attest_match"] == "mismatch").mean()
    assert comb.loc[("alle", "combined"), "estimate"] == pytest.approx(share, abs=1e-12)
    assert comb.loc[("alle", "combined"), "bse"] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- the command sequence, bundle and privacy


def test_command_sequence_to_bundle(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(study / "study.toml")
    assert main(["plans", "sample", "--config", cfg]) == 0
    assert main(["plans", "sheets", "--config", cfg]) == 0
    sheets = study / "derived" / "plans" / "sheets"
    assert sorted(p.name for p in sheets.glob("coder_*.xlsx")) == ["coder_A.xlsx", "coder_B.xlsx"]
    from openpyxl import load_workbook

    cells = [str(v) for row in load_workbook(sheets / "coder_A.xlsx")["codering"].iter_rows(values_only=True) for v in row if v]
    joined = "\n".join(cells)
    assert "[INSZ]" in joined and "[e-mail]" in joined  # the sample holds POPs with personal data, masked
    assert not re.search(r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", joined) and "@" not in joined
    assert main(["plans", "simulate", "--config", cfg, "--truth", str(study / "truth")]) == 0
    assert main(["plans", "ingest", "--config", cfg]) == 1  # disagreements: reconciliation sheet written
    assert (sheets / "reconciliation.xlsx").exists()
    assert main(["plans", "ingest", "--config", cfg]) == 2  # still empty: a clear error
    assert "not reconciled yet" in capsys.readouterr().err
    assert main(["plans", "simulate", "--config", cfg, "--truth", str(study / "truth"), "--reconciliation"]) == 0
    assert main(["plans", "ingest", "--config", cfg]) == 0
    assert main(["plans", "estimate", "--config", cfg]) == 0
    bundle = study / "derived" / "plans" / "bundle"
    from analysis.plans.tables import PLANS_TABLES, read_plans_tables

    tabs = read_plans_tables(bundle)
    assert set(tabs) == set(PLANS_TABLES)
    est = tabs["plans_estimates"]
    overall = est[est["stratum"] == "alle"].set_index(["measure", "estimator"])
    codes = pd.read_csv(study / "derived" / "plans" / "codes.csv")
    assert len(codes) == 160
    # the reconciled codes are the truth (the demo's reconciler) and the design estimate covers the frame's share
    truth = pd.read_parquet(study / "truth" / "plans_codes.parquet").rename(columns={"trajectory_id": "pop_id"})
    frame = pd.read_parquet(study / "derived" / "plans" / "frame.parquet").merge(truth, on="pop_id")
    for measure, (code, value) in {"no_training": ("training_recommended", "nee"), "mismatch": ("attest_match", "mismatch")}.items():
        t = (frame[code] == value).mean()
        r = overall.loc[(measure, "design")]
        assert r["ci_lower"] - 0.03 <= t <= r["ci_upper"] + 0.03
    assert overall.loc[("mismatch", "combined"), "bse"] < overall.loc[("mismatch", "design"), "bse"]
    for g in GOALS:  # the cross-fitted text classifier sharpens the goal shares; human codes stay the design estimate
        assert overall.loc[(g, "combined"), "bse"] < overall.loc[(g, "design"), "bse"]  # coverage: bench/
    agr = tabs["plans_agreement"].set_index("code")
    assert (agr["kappa"] > 0.4).all() and (agr["n_disagreements"] > 0).any()
    val = tabs["plans_validation"].set_index("flag")
    assert val.loc["mismatch", "recall"] > 0.6 and val.loc["match", "precision"] > 0.8
    conc = tabs["plans_concordance"]
    assert "attest_matches_training" in set(conc["comparison"])
    # privacy: no POP text anywhere in the bundle
    texts = pd.read_parquet(study / "plans" / "pop_texts.parquet")
    fragments = {line for t in texts["text"].head(200) for line in t.splitlines() if len(line) > 40}
    blob = "\n".join(p.read_text(encoding="utf-8") for p in bundle.rglob("*") if p.is_file())
    assert not any(f in blob for f in fragments)
    assert "@" not in blob
    # a second wave: changes against the previous bundle
    prev = study / "derived" / "plans" / "previous"
    import shutil

    shutil.copytree(bundle, prev)
    assert main(["plans", "estimate", "--config", cfg, "--previous", str(prev)]) == 0
    ch = read_plans_tables(bundle)["plans_changes"]
    assert len(ch) >= 8 and np.allclose(ch["difference"], 0.0)


def test_report_include_executes(study: Path) -> None:
    """The include's code cells run against the bundle and produce the section's numbers."""
    bundle = study / "derived" / "plans" / "bundle"
    if not (bundle / "tables" / "plans_estimates.csv").exists():
        pytest.skip("needs test_command_sequence_to_bundle")
    root = Path(__file__).resolve().parents[1] / "reports"
    for lang in ("nl", "en"):
        src = (root / f"_plans-{lang}.qmd").read_text(encoding="utf-8")
        cells = re.findall(r"```\{python\}\n(.*?)```", src, flags=re.S)
        assert cells, "the include has code cells"
        ns: dict[str, object] = {"bundle": str(bundle)}
        for c in cells:
            exec(compile(c, f"_plans-{lang}.qmd", "exec"), ns)
        inline = re.findall(r"`\{python\} ([^`]+)`", src)
        assert len(inline) >= 6
        values = [str(eval(expr, ns)) for expr in inline]
        assert all(v and v != "nan" for v in values)


def test_report_include_renders_with_a_kernel(study: Path, tmp_path: Path) -> None:
    """The nl include, wrapped in a minimal report, runs in a Jupyter kernel and pandoc writes its tables."""
    from analysis.report.render import render_report

    bundle = study / "derived" / "plans" / "bundle"
    if not (bundle / "tables" / "plans_estimates.csv").exists():
        pytest.skip("needs test_command_sequence_to_bundle")
    src = (Path(__file__).resolve().parents[1] / "reports" / "_plans-nl.qmd").read_text(encoding="utf-8")
    head = '---\ntitle: "POP"\nlang: nl-BE\nexecute:\n  echo: false\njupyter: python3\n---\n\n```{python}\n#| tags: [parameters]\nbundle = "bundle"\n```\n\n'
    qmd = tmp_path / "wrap.qmd"
    qmd.write_text(head + src, encoding="utf-8")
    r = render_report(bundle, qmd=qmd, out=tmp_path / "out", formats=("html",), engine="python", params={"bundle": str(bundle)})
    html = Path(r.outputs["html"]).read_text(encoding="utf-8").replace("&nbsp;", "\u00a0")
    from analysis.plans.report import PlansSection

    sec = PlansSection(bundle, "nl")
    for needle in ("Reden niet afleidbaar", "Cohens kappa", "(koppeling)", sec.pct("no_training"), sec.ci("mismatch", "combined")):
        assert needle in html, needle


@pytest.mark.parametrize(
    ("plans", "param", "listed"),
    [
        ({"strata": ["provincie"]}, "plans.strata", "centre_size"),
        ({"allocation": "neyman"}, "plans.allocation", "proportional"),
        ({"sample_size": 1}, "plans.sample_size", ">= 2"),
        ({"match_threshold": 150}, "plans.match_threshold", "between 0 and 100"),
    ],
)
def test_plans_settings_are_checked(plans: dict[str, object], param: str, listed: str) -> None:
    from analysis.config import config_from_dict
    from survey.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        config_from_dict({"survey": {"survey_id": 461283}, "plans": plans})
    assert param in str(e.value) and listed in str(e.value)


def test_popeval_demo_writes_the_pop_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--persons", "3000", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert "POP texts" in capsys.readouterr().out
    texts = read_texts(tmp_path / "plans" / "pop_texts.parquet")
    truth = pd.read_parquet(tmp_path / "truth" / "plans_codes.parquet")
    cat = pd.read_csv(tmp_path / "plans" / "trainings.csv")
    assert len(texts) == len(truth) > 100 and set(texts["pop_id"]) == set(truth["trajectory_id"])
    assert {"training_id", "training_name", "provider"} <= set(cat.columns) and cat["training_id"].is_unique
    assert list(pd.read_parquet(tmp_path / "plans" / "pop_texts.parquet").columns) == ["trajectory_id", "text"]  # codes only in truth/


def test_simulated_coders_err_more_on_the_codes_that_need_judgement() -> None:
    from analysis.plans.synth import simulated_coder

    rng = np.random.default_rng(5)
    n = 20_000
    truth = pd.DataFrame({c.name: rng.choice([a for a in c.allowed if a != "nvt"], n) for c in CODEBOOK.codes})
    truth["reason_derivable"] = np.where(truth["training_recommended"] == "nee", "nvt", truth["reason_derivable"])
    truth["difficulty"] = np.where(rng.random(n) < 0.05, "vague", "")
    truth.index = [f"P{i}" for i in range(n)]
    code = simulated_coder(truth, 0)
    coded = pd.DataFrame([code(i) for i in truth.index], index=truth.index)
    err = (coded != truth[coded.columns]).mean()
    hard = truth["difficulty"] == "vague"
    err_hard = (coded[hard] != truth.loc[hard, coded.columns]).mean()
    # coder 0: base rate 4 %, judgement codes x 1.5, hard POPs x 5 (the error model of simulate_coders)
    assert 0.03 < err["training_recommended"] < 0.07
    assert err["attest_match"] > err["training_recommended"] + 0.01
    assert err_hard["training_recommended"] > 3 * err["training_recommended"]
    # dependent codes stay consistent with the codebook's decision rule
    assert ((coded["training_recommended"] == "nee") == (coded["reason_derivable"] == "nvt")).all()
    # the same coder codes the same way
    again = simulated_coder(truth, 0)
    assert all(again(i) == coded.loc[i].to_dict() for i in truth.index[:200])


def test_a_previous_wave_of_bundle_format_1_is_compared_with_its_std_error_read_as_bse(tmp_path: Path) -> None:
    """A plans bundle of an earlier wave, written before the format was recorded, named its
    standard errors ``std_error``: the change since that wave uses them as ``bse``."""
    import json

    from analysis.plans.stage import changes
    from analysis.plans.tables import read_plans_tables
    from survey.hashing import sha256_file

    cols = {"measure": ["mismatch"] * 2, "stratum": ["alle"] * 2, "estimator": ["design", "combined"],
            "ci_lower": [0.1, 0.1], "ci_upper": [0.3, 0.3], "n_sample": [200, 200], "N_population": [5000, 5000]}
    old = tmp_path / "previous"
    (old / "tables").mkdir(parents=True)
    pd.DataFrame({**cols, "estimate": [0.20, 0.21], "std_error": [0.03, 0.02]}).to_csv(old / "tables" / "plans_estimates.csv", index=False)
    (old / "estimates.json").write_text("{}\n", encoding="utf-8")
    files = {f: sha256_file(old / f) for f in ("estimates.json", "tables/plans_estimates.csv")}
    (old / "manifest.json").write_text(json.dumps({"part": "plans", "files": files}), encoding="utf-8")
    assert list(read_plans_tables(old)["plans_estimates"].columns).count("bse") == 1
    now = pd.DataFrame({**cols, "estimate": [0.26, 0.25], "bse": [0.04, 0.015]})
    ch = changes(now, old).set_index("estimator")
    assert ch.loc["design", "difference"] == pytest.approx(0.06)
    assert ch.loc["design", "bse"] == pytest.approx(0.05)  # sqrt(0.04^2 + 0.03^2)
    assert ch.loc["combined", "bse"] == pytest.approx(np.hypot(0.015, 0.02))


def test_goal_predictions_from_shared_text_features_are_the_same() -> None:
    """The TF-IDF of the frame's texts, computed once (as for repeated samples of one frame), gives
    exactly the predictions computed from the texts; features of another frame are refused."""
    from analysis.plans.classify import goal_predictions, text_features

    rng = np.random.default_rng(3)
    words = ["opleiding", "loopbaan", "balans", "gezin", "talent", "groei", "heroriëntatie", "sector", "job", "werk"]
    ids = [f"P{i:03d}" for i in range(60)]
    texts = pd.DataFrame({"pop_id": ids, "text": [" ".join(rng.choice(words, size=12)) for _ in ids]})
    codes = pd.DataFrame({"pop_id": ids[:30], "stratum": ["a", "b"] * 15})
    for g in GOALS:
        codes[g] = np.where([g.split("_")[-1][:4] in t for t in texts["text"][:30]] | (rng.random(30) < 0.3), "ja", "nee")
    frame_ids = pd.Series(ids)
    direct = goal_predictions(codes, texts, frame_ids, seed=5)
    shared = goal_predictions(codes, texts, frame_ids, seed=5, features=text_features(texts, frame_ids))
    assert set(direct) == set(GOALS)
    for g in GOALS:
        for a, b in zip(direct[g], shared[g], strict=True):
            pd.testing.assert_series_equal(a, b, check_exact=True)
    assert direct[GOALS[0]][0].between(0, 1).all() and direct[GOALS[0]][0].std() > 0  # the texts inform the model
    with pytest.raises(ValueError, match="another frame"):
        goal_predictions(codes, texts, frame_ids, features=text_features(texts, frame_ids.iloc[:50]))


def test_strata_are_labelled_in_the_reports_language() -> None:
    """The POP frame's own codes of the strata columns (no incentive, the centres' size classes) and
    the incentives get labels in both languages; a career centre's name stays itself."""
    from analysis.plans.frame import NO_INCENTIVE
    from analysis.plans.report import stratum_category_label

    en = {code: stratum_category_label("centre_size", code, "en") for code in ("klein", "middel", "groot")}
    assert en == {"klein": "small career centre", "middel": "medium-sized career centre", "groot": "large career centre"}
    assert stratum_category_label("centre_size", "groot", "nl") == "groot loopbaancentrum"
    assert stratum_category_label("incentive", NO_INCENTIVE, "en") == "No POP-based training with an incentive"
    assert stratum_category_label("incentive", "VOV", "en") == "Flemish training leave"
    assert stratum_category_label("incentive", "OC", "nl") == "Opleidingscheques"
    assert stratum_category_label("loopbaancentrum", "Gent Zuid", "en") == "Gent Zuid"
