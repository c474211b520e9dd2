"""``popeval plans``: the POP part of the study, step by step.

The sequence (every step reads the study configuration's ``[plans]`` section; working files go to
``<derived_dir>/plans/``)::

    popeval plans sample   --config study.toml   # frame of POPs and the stratified sample
    popeval plans sheets   --config study.toml   # one blind coding sheet per coder
    (the coders fill plans/sheets/coder_<name>.xlsx)
    popeval plans ingest   --config study.toml   # agreement; writes plans/sheets/reconciliation.xlsx
    (the researchers fill 'definitief' in the reconciliation sheet)
    popeval plans ingest   --config study.toml   # the reconciled code set
    popeval plans estimate --config study.toml   # concordance, estimates -> bundle tables plans_*.csv

For the synthetic demo, ``popeval plans simulate --config studies/demo.toml --truth data_raw/demo/truth``
fills the coder sheets (and, with ``--reconciliation``, the reconciliation sheet) from the known codes.
``popeval plans codebook`` prints the codebook.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from analysis.config import StudyConfig

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval plans``."""
    sub = p.add_subparsers(dest="plans_command", metavar="STEP", required=True)
    steps = {
        "codebook": "print the codebook (codes, values, definitions, decision rules)",
        "sample": "build the POP frame and draw the stratified sample",
        "sheets": "write one blind coding sheet (.xlsx) per coder",
        "ingest": "read the filled sheets, compute agreement and the reconciled codes",
        "estimate": "automated concordance on every POP and the estimates; write the plans tables",
        "simulate": "demo only: fill the sheets from the synthetic study's true codes",
    }
    for name, help_ in steps.items():
        s = sub.add_parser(name, help=help_, description=help_)
        if name != "codebook":
            s.add_argument("--config", required=True, help="the study configuration (TOML) with a [plans] section")
        if name in ("sample", "sheets"):
            s.add_argument("--overwrite", action="store_true", help="replace an existing sample / existing sheets")
        if name == "estimate":
            s.add_argument("--bundle", help="bundle folder to add the plans tables to (default <derived>/plans/bundle)")
            s.add_argument("--previous", help="the previous wave's bundle (overrides [plans] previous)")
        if name == "simulate":
            s.add_argument("--truth", required=True, help="the synthetic study's truth/ folder")
            s.add_argument("--reconciliation", action="store_true", help="fill the reconciliation sheet instead of the coder sheets")


def _workdir(cfg: StudyConfig) -> Path:
    return cfg.path(cfg.study.derived_dir) / "plans"


def _need(cfg: StudyConfig, path: Path, what: str, hint: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{what} not found", file=path, expected=what, found="no such file", hint=hint)
    return path


def _inputs(cfg: StudyConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from analysis.plans.frame import read_texts
    from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
    from survey.validate import read_table

    if not cfg.plans.texts:
        raise ConfigError("The study has no POP texts", file=cfg.source, param="plans.texts", expected="a folder or table of POP texts", found="empty", hint="set texts in the [plans] section")
    texts = read_texts(cfg.path(cfg.plans.texts), cfg.plans.id_column, cfg.plans.text_column)
    traj = read_table(cfg.path(cfg.admin.vdab), VDAB_TRAJECTORIES)
    dwse = read_table(cfg.path(cfg.admin.dwse), DWSE_APPLICATIONS)
    return texts, traj, dwse


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False, lineterminator="\n", float_format="%.12g")
    tmp.replace(path)


def _sample(cfg: StudyConfig, overwrite: bool) -> int:
    from analysis.plans.frame import build_frame
    from analysis.plans.sample import draw_sample

    wd = _workdir(cfg)
    if (wd / "sample.csv").exists() and not overwrite:
        raise ConfigError("A POP sample already exists", file=wd / "sample.csv", expected="no sample yet", found="an existing sample (coding may have started)", hint="use --overwrite to draw a new one")
    texts, traj, dwse = _inputs(cfg)
    frame, counts = build_frame(texts, traj, dwse, cfg.plans.population)
    s = draw_sample(frame, cfg.plans.sample_size, cfg.plans.strata, allocation=cfg.plans.allocation, min_per_stratum=cfg.plans.min_per_stratum, seed=cfg.study.seed)
    wd.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(wd / "frame.parquet", index=False)
    _atomic_csv(counts, wd / "frame_counts.csv")
    _atomic_csv(s.units, wd / "sample.csv")
    _atomic_csv(s.strata, wd / "sample_strata.csv")
    (wd / "sample.json").write_text(json.dumps({"strata": list(s.strata_columns), "seed": s.seed, "allocation": cfg.plans.allocation, "n": s.nobs}, indent=2) + "\n", encoding="utf-8")
    print(s.summary())
    return 0


def _sheet_units(cfg: StudyConfig, ids: pd.Series) -> pd.DataFrame:
    import pandas as pd

    from analysis.plans.frame import mask_personal, read_texts

    texts = read_texts(cfg.path(cfg.plans.texts), cfg.plans.id_column, cfg.plans.text_column).set_index("pop_id")
    frame = pd.read_parquet(_workdir(cfg) / "frame.parquet").set_index("pop_id")
    cat = _catalogue(cfg)
    name_of = dict(zip(cat["training_id"], cat["training_name"], strict=False))
    return pd.DataFrame(
        {
            "pop_id": ids.to_numpy(),
            "text": [mask_personal(texts.loc[i, "text"]) for i in ids],
            "attest_training": [name_of.get(frame.loc[i, "attest_training_id"]) for i in ids],
        }
    )


def _catalogue(cfg: StudyConfig) -> pd.DataFrame:
    import pandas as pd

    if not cfg.plans.trainings:
        raise ConfigError("The training catalogue is not configured", file=cfg.source, param="plans.trainings", expected="a CSV with training_id and training_name", found="empty")
    path = _need(cfg, cfg.path(cfg.plans.trainings), "the training catalogue", "check [plans] trainings")
    cat = pd.read_csv(path, dtype=str, keep_default_na=False)
    for c in ("training_id", "training_name"):
        if c not in cat.columns:
            raise ConfigError("The training catalogue lacks a column", file=path, column=c, expected="training_id, training_name", found=", ".join(cat.columns))
    return cat


def _sheets(cfg: StudyConfig, overwrite: bool) -> int:
    import pandas as pd

    from analysis.plans.sheets import write_sheets

    wd = _workdir(cfg)
    units = pd.read_csv(_need(cfg, wd / "sample.csv", "the POP sample", "run `popeval plans sample` first"), dtype={"pop_id": str})
    paths = write_sheets(wd / "sheets", _sheet_units(cfg, units["pop_id"]), cfg.plans.coders, seed=cfg.study.seed, overwrite=overwrite)
    print(f"Wrote {len(paths)} coding sheets ({len(units)} POPs each) to {wd / 'sheets'}")
    print("  These files contain personal text: keep them in the study's protected folder.")
    return 0


def _ingest(cfg: StudyConfig) -> int:
    import pandas as pd

    from analysis.plans.agreement import agreement, disagreements, reconcile
    from analysis.plans.sheets import (
        coder_sheets,
        read_reconciliation,
        read_sheets,
        write_reconciliation,
    )

    wd = _workdir(cfg)
    units = pd.read_csv(_need(cfg, wd / "sample.csv", "the POP sample", "run `popeval plans sample` first"), dtype={"pop_id": str})
    paths = [p for p in coder_sheets(wd / "sheets") if p.stem.removeprefix("coder_") in cfg.plans.coders]
    coded = read_sheets(paths, units["pop_id"].tolist())
    _atomic_csv(coded, wd / "coded.csv")
    agr = agreement(coded, n_boot=min(cfg.plans.bootstrap, 200) if cfg.plans.bootstrap else 0, seed=cfg.study.seed)
    print(agr.summary())
    dis = disagreements(coded)
    _atomic_csv(dis, wd / "disagreements.csv")
    rec_path = wd / "sheets" / "reconciliation.xlsx"
    reconciled = read_reconciliation(rec_path, dis) if len(dis) and rec_path.exists() else None
    try:
        codes = reconcile(coded, reconciled)
    except DataValidationError:
        if rec_path.exists():
            raise
        write_reconciliation(rec_path, dis, _sheet_units(cfg, dis["pop_id"].drop_duplicates()), sorted(coded["coder"].unique()))
        print(f"{len(dis)} disagreement(s) on {dis['pop_id'].nunique()} POP(s): reconcile them in {rec_path} and run `popeval plans ingest` again.")
        return 1
    _atomic_csv(codes, wd / "codes.csv")
    print(f"Reconciled codes of {len(codes)} POPs written to {wd / 'codes.csv'} ({len(dis)} disagreement(s) resolved).")
    return 0


def _admin_concordance(cfg: StudyConfig) -> pd.DataFrame:
    """The linkage's attest_matches_training among population persons with a POP-attest."""
    import pandas as pd

    from analysis.population import ingest, link, load_population

    db = _workdir(cfg) / "admin.duckdb"
    ingest(cfg.path(cfg.admin.dwse), cfg.path(cfg.admin.vdab), db, pseudonymise=cfg.admin.pseudonymise)
    link(db)
    pop = load_population(db, ["person_key", "pop", "pop_attest", "attest_matches_training"])
    sel = pop[pop["pop_attest"].astype(bool)]
    n_match = int(sel["attest_matches_training"].astype(bool).sum())
    return pd.DataFrame(
        {
            "comparison": "attest_matches_training",
            "category": ["match", "no_match"],
            "n": [n_match, len(sel) - n_match],
        }
    )


def _estimate(cfg: StudyConfig, bundle: str | None, previous: str | None) -> int:
    import numpy as np
    import pandas as pd

    from analysis.disclosure import suppress
    from analysis.plans.agreement import agreement, disagreements
    from analysis.plans.codebook import CODEBOOK
    from analysis.plans.concordance import concordance, validate_flags
    from analysis.plans.estimates import combined_estimate, design_estimates
    from analysis.plans.frame import mask_personal, read_texts
    from analysis.plans.tables import write_plans_tables

    wd = _workdir(cfg)
    units = pd.read_csv(_need(cfg, wd / "sample.csv", "the POP sample", "run `popeval plans sample` first"), dtype={"pop_id": str})
    codes = pd.read_csv(_need(cfg, wd / "codes.csv", "the reconciled codes", "run `popeval plans ingest` first"), dtype=str)
    coded = pd.read_csv(wd / "coded.csv", dtype=str)
    frame = pd.read_parquet(wd / "frame.parquet")
    strata_cols = json.loads((wd / "sample.json").read_text(encoding="utf-8"))["strata"]
    from analysis.plans.sample import stratum_labels

    frame["stratum"] = stratum_labels(frame, strata_cols).to_numpy()
    texts = read_texts(cfg.path(cfg.plans.texts), cfg.plans.id_column, cfg.plans.text_column)
    texts["text"] = texts["text"].map(mask_personal)
    auto = concordance(frame, texts, _catalogue(cfg), threshold=cfg.plans.match_threshold)
    del texts
    auto.to_parquet(wd / "concordance.parquet", index=False)
    sample_codes = units.merge(codes, on="pop_id", how="inner")
    if len(sample_codes) != len(units):
        raise ConfigError("The reconciled codes do not cover the sample", file=wd / "codes.csv", expected=f"{len(units)} POPs", found=f"{len(sample_codes)}", hint="run `popeval plans ingest` again")
    est = pd.concat(
        [design_estimates(sample_codes), combined_estimate(sample_codes, auto, frame[["pop_id", "stratum"]])],
        ignore_index=True,
    )
    thr = cfg.study.disclosure_threshold
    small = est["N_population"] < thr
    est.loc[small, ["estimate", "std_error", "ci_lower", "ci_upper"]] = np.nan
    agr = agreement(coded, n_boot=cfg.plans.bootstrap, seed=cfg.study.seed).to_frame()
    dis = disagreements(coded)
    agr["n_disagreements"] = agr["code"].map(dis.groupby("code").size()).fillna(0).astype(int)
    validation = validate_flags(auto, codes)
    conc_parts = []
    for comp, col in (("pop_vs_attest", "auto_attest_match"), ("pop_vs_followed", "auto_followed_match"), ("attest_vs_followed", "attest_vs_followed")):
        vc = auto[col].value_counts().sort_index()
        conc_parts.append(pd.DataFrame({"comparison": comp, "category": vc.index, "n": vc.to_numpy()}))
    conc_parts.append(_admin_concordance(cfg))
    conc = pd.concat(conc_parts, ignore_index=True)
    conc["pct"] = 100 * conc["n"] / conc.groupby("comparison")["n"].transform("sum")
    conc = suppress(conc, "n", thr, by="comparison", pct_cols={"pct": "n"}).table
    prev_path = previous or (str(cfg.path(cfg.plans.previous)) if cfg.plans.previous else None)
    changes = _changes(est, prev_path)
    counts = pd.read_csv(wd / "frame_counts.csv")
    strata = pd.read_csv(wd / "sample_strata.csv")
    info = {
        "codebook_version": CODEBOOK.version,
        "codes": list(CODEBOOK.names),
        "coders": sorted(coded["coder"].unique()),
        "sample": {"n": len(units), "strata": strata_cols, "allocation": cfg.plans.allocation, "seed": cfg.study.seed},
        "population": cfg.plans.population,
        "match_threshold": cfg.plans.match_threshold,
        "bootstrap": cfg.plans.bootstrap,
        "reconciliation_rule": "agreeing coders' value; otherwise the reconciliation sheet's value (with three or more coders a strict majority when not reconciled)",
        "previous_bundle": Path(prev_path).name if prev_path else None,
        "disclosure_threshold": thr,
    }
    out = Path(bundle) if bundle else wd / "bundle"
    write_plans_tables(
        out,
        {
            "plans_frame": counts,
            "plans_sample": strata,
            "plans_agreement": agr,
            "plans_estimates": est,
            "plans_validation": validation,
            "plans_concordance": conc,
            "plans_changes": changes,
        },
        info,
    )
    head = est[(est["stratum"] == "alle") & (est["estimator"] != "automated")]
    print(head[["measure", "estimator", "estimate", "ci_lower", "ci_upper"]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"Plans tables written to {out / 'tables'}")
    return 0


def _changes(est: pd.DataFrame, previous: str | None) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from analysis.plans.tables import PLANS_TABLES, read_plans_tables

    cols = list(PLANS_TABLES["plans_changes"][0])
    if not previous:
        return pd.DataFrame(columns=cols)
    prev = read_plans_tables(previous).get("plans_estimates")
    if prev is None:
        raise ConfigError("The previous bundle has no plans estimates", file=Path(previous), expected="tables/plans_estimates.csv", found="none", hint="point --previous at the last wave's bundle")
    a = est[(est["stratum"] == "alle") & est["estimator"].isin(["design", "combined"])]
    b = prev[(prev["stratum"] == "alle")][["measure", "estimator", "estimate", "std_error"]]
    m = a.merge(b, on=["measure", "estimator"], suffixes=("", "_prev"))
    se = np.sqrt(m["std_error"] ** 2 + m["std_error_prev"] ** 2)
    diff = m["estimate"] - m["estimate_prev"]
    return pd.DataFrame(
        {
            "measure": m["measure"],
            "estimator": m["estimator"],
            "estimate": m["estimate"],
            "previous": m["estimate_prev"],
            "difference": diff,
            "std_error": se,
            "ci_lower": diff - 1.959963984540054 * se,
            "ci_upper": diff + 1.959963984540054 * se,
        }
    )


def _simulate(cfg: StudyConfig, truth: str, reconciliation: bool) -> int:
    from analysis.plans.synth import simulate_coders, simulate_reconciliation

    wd = _workdir(cfg)
    tpath = _need(cfg, Path(truth) / "plans_codes.parquet", "the true POP codes", "pass the synthetic study's truth/ folder")
    if reconciliation:
        simulate_reconciliation(_need(cfg, wd / "sheets" / "reconciliation.xlsx", "the reconciliation sheet", "run `popeval plans ingest` first"), tpath)
        print("Filled the reconciliation sheet from the true codes.")
    else:
        done = simulate_coders(wd / "sheets", tpath, seed=cfg.study.seed)
        print(f"Filled {len(done)} coder sheets from the true codes (with simulated coding errors).")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one step of the POP part."""
    if args.plans_command == "codebook":
        from analysis.plans.codebook import CODEBOOK

        print(CODEBOOK.summary())
        return 0
    from analysis.config import load_config

    cfg = load_config(args.config)
    if args.plans_command == "sample":
        return _sample(cfg, args.overwrite)
    if args.plans_command == "sheets":
        return _sheets(cfg, args.overwrite)
    if args.plans_command == "ingest":
        return _ingest(cfg)
    if args.plans_command == "estimate":
        return _estimate(cfg, args.bundle, args.previous)
    return _simulate(cfg, args.truth, args.reconciliation)
