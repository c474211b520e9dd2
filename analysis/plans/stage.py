"""The POP part as one stage of a study: from POP files to the ``plans_*`` tables.

Each step is a function of the study configuration; its working files live in ``<derived_dir>/plans/``
(:func:`workdir`), never in the bundle:

* :func:`draw` builds the frame of POPs and draws the stratified sample (``frame.parquet``,
  ``frame_counts.csv``, ``sample.csv``, ``sample_strata.csv``, ``sample.json``);
* :func:`write_coder_sheets` writes one blind coding workbook per coder (``sheets/coder_<name>.xlsx``);
* :func:`ingest` reads the filled workbooks (``coded.csv``, ``disagreements.csv``), writes the
  reconciliation workbook when the coders disagree and, once it is filled, the reconciled codes
  (``codes.csv``);
* :func:`compute_tables` runs the automated concordance on every POP, the estimates and the agreement
  and returns the ``plans_*`` tables (aggregates only, disclosure-protected);
* :func:`advance` does whichever of these steps the study's state calls for (what ``popeval run``
  calls): it never overwrites a sample or a sheet, and says what the researchers must do next.

:func:`input_hashes` lists the POP part's inputs (texts, catalogue, sample, filled sheets,
reconciliation, previous wave) with their SHA-256, for the run's manifest and cache keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:  # pragma: no cover
    from analysis.config import StudyConfig

__all__ = [
    "PlansState",
    "admin_db",
    "advance",
    "catalogue",
    "compute_tables",
    "draw",
    "ingest",
    "input_hashes",
    "sample_matches_texts",
    "sheet_units",
    "texts_hash",
    "workdir",
    "write_coder_sheets",
]


@dataclass(frozen=True)
class PlansState:
    """Where the POP part of a study stands (immutable).

    ``state`` is ``sheets_written`` (blank sheets just written), ``coding`` (the coders are not done),
    ``reconciliation`` (disagreements wait in the reconciliation workbook) or ``coded`` (the
    reconciled codes are there: the tables can be computed).  ``message`` says what to do next.
    """

    state: str
    message: str
    progress: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Whether the reconciled codes are complete."""
        return self.state == "coded"

    def summary(self) -> str:
        """One line per coder and the next step."""
        lines = [f"POP part: {self.state}"] + [f"  coder {c}: {done} of {n} POPs coded" for c, (done, n) in sorted(self.progress.items())]
        return "\n".join([*lines, f"  {self.message}"])

    def to_frame(self) -> pd.DataFrame:
        """One row per coder: coded and total POPs."""
        return pd.DataFrame([{"coder": c, "coded": d, "total": n} for c, (d, n) in sorted(self.progress.items())], columns=["coder", "coded", "total"])


def workdir(cfg: StudyConfig) -> Path:
    """The POP part's working folder (``<derived_dir>/plans``): personal text, never published."""
    return cfg.path(cfg.study.derived_dir).resolve() / "plans"


def _need(path: Path, what: str, hint: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{what} not found", file=path, expected=what, found="no such file", hint=hint)
    return path


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    from survey.files import atomic_write

    with atomic_write(path, newline="") as fh:
        df.to_csv(fh, index=False, lineterminator="\n", float_format="%.12g")


#: the last POP table read, by (path, columns, SHA-256 of the file): one process reads it once (sample, sheets, reconciliation)
_TEXTS_READ: dict[tuple[str, str, str, str], pd.DataFrame] = {}


def _read_texts(cfg: StudyConfig) -> pd.DataFrame:
    from analysis.plans.frame import read_texts

    if not cfg.plans.texts:
        raise ConfigError("The study has no POP texts", file=cfg.source, param="plans.texts", expected="a folder or table of POP texts", found="empty", hint="set texts in the [plans] section")
    path = cfg.path(cfg.plans.texts)
    if not path.is_file():  # a folder of documents (or nothing: read_texts names the problem)
        return read_texts(path, cfg.plans.id_column, cfg.plans.text_column)
    from survey.hashing import sha256_file

    key = (str(path.resolve()), cfg.plans.id_column, cfg.plans.text_column, sha256_file(path))
    if key not in _TEXTS_READ:
        texts = read_texts(path, cfg.plans.id_column, cfg.plans.text_column)
        _TEXTS_READ.clear()
        _TEXTS_READ[key] = texts
    return _TEXTS_READ[key].copy()


def catalogue(cfg: StudyConfig) -> pd.DataFrame:
    """The training catalogue (``training_id``, ``training_name``) of ``[plans] trainings``."""
    if not cfg.plans.trainings:
        raise ConfigError("The training catalogue is not configured", file=cfg.source, param="plans.trainings", expected="a CSV with training_id and training_name", found="empty")
    path = _need(cfg.path(cfg.plans.trainings), "the training catalogue", "check [plans] trainings")
    cat = pd.read_csv(path, dtype=str, keep_default_na=False)
    for c in ("training_id", "training_name"):
        if c not in cat.columns:
            raise ConfigError("The training catalogue lacks a column", file=path, column=c, expected="training_id, training_name", found=", ".join(cat.columns))
    return cat


def admin_db(cfg: StudyConfig, db: str | Path | None = None, *, linked: bool = True) -> Path:
    """The linked admin database: ``db`` (``popeval run`` passes its own), else built in the working folder.

    The admin extracts are read as ``popeval run`` reads them (own file layouts of ``[admin.dwse]`` /
    ``[admin.vdab]``, raw INSZ pseudonymised with ``POPEVAL_PSEUDO_KEY`` when ``pseudonymise``).
    ``linked=False`` stops after the ingest (the validated extracts, all the frame needs: no linkage).
    """
    if db is not None:
        return Path(db)
    from analysis.population import ingest as ingest_admin
    from analysis.population import link

    path = workdir(cfg) / "admin.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    ingest_admin(cfg.path(cfg.admin.dwse), cfg.path(cfg.admin.vdab), path, pseudonymise=cfg.admin.pseudonymise, dwse_spec=cfg.admin.dwse_input, vdab_spec=cfg.admin.vdab_input)
    if linked:
        link(path)
    return path


def _admin_tables(db: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated VDAB trajectories and the DWSE applications' columns the frame needs
    (:data:`analysis.plans.frame.FOLLOWED_COLUMNS`) from the admin database."""
    import duckdb

    from analysis.plans.frame import FOLLOWED_COLUMNS

    with duckdb.connect(str(db), read_only=True) as con:
        traj = con.execute("SELECT * EXCLUDE (source_row) FROM vdab_trajectories ORDER BY trajectory_id").df()
        dwse = con.execute(f"SELECT {', '.join(FOLLOWED_COLUMNS)} FROM dwse_applications ORDER BY application_id").df()
    return traj, dwse


def draw(cfg: StudyConfig, *, overwrite: bool = False, db: str | Path | None = None) -> Any:
    """Build the POP frame and draw the sample; returns the :class:`~analysis.plans.sample.PlanSample`.

    ``db`` is the admin database (see :func:`admin_db`; without one, the extracts are ingested, not linked).
    """
    from analysis.plans.frame import build_frame
    from analysis.plans.sample import draw_sample

    wd = workdir(cfg)
    if (wd / "sample.csv").exists() and not overwrite:
        raise ConfigError("A POP sample already exists", file=wd / "sample.csv", expected="no sample yet", found="an existing sample (coding may have started)", hint="use --overwrite to draw a new one")
    texts = _read_texts(cfg)
    traj, dwse = _admin_tables(admin_db(cfg, db, linked=False))
    frame, counts = build_frame(texts, traj, dwse, cfg.plans.population)
    del texts
    s = draw_sample(frame, cfg.plans.sample_size, cfg.plans.strata, allocation=cfg.plans.allocation, min_per_stratum=cfg.plans.min_per_stratum, seed=cfg.study.seed)
    wd.mkdir(parents=True, exist_ok=True)
    from survey.files import atomic_write

    with atomic_write(wd / "frame.parquet", "wb") as fh:
        frame.to_parquet(fh, index=False)
    _atomic_csv(counts, wd / "frame_counts.csv")
    _atomic_csv(s.strata, wd / "sample_strata.csv")
    with atomic_write(wd / "sample.json") as fh:
        fh.write(json.dumps({"strata": list(s.strata_columns), "seed": s.seed, "allocation": cfg.plans.allocation, "n": s.nobs, "texts_sha256": texts_hash(cfg)}, indent=2) + "\n")
    _atomic_csv(s.units, wd / "sample.csv")  # last: a sample exists only when its frame does
    return s


def texts_hash(cfg: StudyConfig) -> str:
    """SHA-256 of the POP texts (the file, or every file of the folder)."""
    return _hash_path(cfg.path(cfg.plans.texts))


def sample_matches_texts(cfg: StudyConfig) -> bool:
    """Whether the existing sample was drawn from the POP texts as they are now."""
    meta = workdir(cfg) / "sample.json"
    if not meta.exists() or not (workdir(cfg) / "frame.parquet").exists():
        return False
    recorded = json.loads(meta.read_text(encoding="utf-8")).get("texts_sha256")
    return recorded is None or recorded == texts_hash(cfg)


def _sample_units(cfg: StudyConfig) -> pd.DataFrame:
    return pd.read_csv(_need(workdir(cfg) / "sample.csv", "the POP sample", "run `popeval plans sample` (or `popeval run`) first"), dtype={"pop_id": str})


def sheet_units(cfg: StudyConfig, ids: pd.Series) -> pd.DataFrame:
    """``pop_id``, the masked ``text`` and the attest's ``attest_training`` of the POPs ``ids``."""
    from analysis.plans.frame import mask_personal

    texts = _read_texts(cfg).set_index("pop_id")
    frame = pd.read_parquet(workdir(cfg) / "frame.parquet").set_index("pop_id")
    cat = catalogue(cfg)
    name_of = dict(zip(cat["training_id"], cat["training_name"], strict=False))
    missing = [i for i in ids if i not in texts.index or i not in frame.index]
    if missing:
        raise DataValidationError(
            "The POP sample does not belong to these POP texts",
            file=workdir(cfg) / "sample.csv",
            expected="sampled POPs that are in the POP texts and the frame",
            found=f"{len(missing)} sampled POP(s) without a text, e.g. {missing[0]}",
            hint="the texts changed after the sample was drawn; restore them, or draw a new sample with `popeval plans sample --overwrite`",
        )
    return pd.DataFrame(
        {
            "pop_id": ids.to_numpy(),
            "text": [mask_personal(texts.loc[i, "text"]) for i in ids],
            "attest_training": [name_of.get(frame.loc[i, "attest_training_id"]) for i in ids],
        }
    )


def write_coder_sheets(cfg: StudyConfig, *, overwrite: bool = False) -> list[Path]:
    """One blind coding workbook per coder of ``[plans] coders`` (texts masked before writing)."""
    from analysis.plans.sheets import write_sheets

    units = _sample_units(cfg)
    return write_sheets(workdir(cfg) / "sheets", sheet_units(cfg, units["pop_id"]), cfg.plans.coders, seed=cfg.study.seed, overwrite=overwrite)


def _coder_paths(cfg: StudyConfig) -> list[Path]:
    return [workdir(cfg) / "sheets" / f"coder_{c}.xlsx" for c in cfg.plans.coders]


def ingest(cfg: StudyConfig, *, n_boot: int | None = None) -> tuple[PlansState, Any]:
    """Read the filled coder sheets; reconcile (writing the reconciliation workbook when needed).

    Returns
    -------
    state, agreement
        ``coded`` with the reconciled codes in ``codes.csv``, or ``reconciliation`` when the
        disagreements wait in ``sheets/reconciliation.xlsx``; the agreement result (for printing).

    Raises
    ------
    DataValidationError
        For any invalid, missing or duplicate cell of the sheets (naming sheet, row and column).
    """
    from analysis.plans.agreement import agreement, disagreements, reconcile
    from analysis.plans.sheets import read_reconciliation, read_sheets, write_reconciliation

    wd = workdir(cfg)
    units = _sample_units(cfg)
    paths = [_need(p, "a coding sheet", "run `popeval plans sheets` first") for p in _coder_paths(cfg)]
    coded = read_sheets(paths, units["pop_id"].tolist())
    _atomic_csv(coded, wd / "coded.csv")
    boot = min(cfg.plans.bootstrap, 200) if n_boot is None else n_boot
    agr = agreement(coded, n_boot=boot, seed=cfg.study.seed)
    dis = disagreements(coded)
    _atomic_csv(dis, wd / "disagreements.csv")
    rec_path = wd / "sheets" / "reconciliation.xlsx"
    reconciled = read_reconciliation(rec_path, dis) if len(dis) and rec_path.exists() else None
    try:
        codes = reconcile(coded, reconciled)
    except DataValidationError:
        if rec_path.exists():
            raise
        write_reconciliation(rec_path, dis, sheet_units(cfg, dis["pop_id"].drop_duplicates()), sorted(coded["coder"].unique()))
        msg = f"{len(dis)} disagreement(s) on {dis['pop_id'].nunique()} POP(s): reconcile them in {rec_path} (column 'definitief') and run again."
        return PlansState("reconciliation", msg), agr
    _atomic_csv(codes, wd / "codes.csv")
    return PlansState("coded", f"Reconciled codes of {len(codes)} POPs written to {wd / 'codes.csv'} ({len(dis)} disagreement(s) resolved)."), agr


def _reconciliation_open(path: Path) -> int:
    """Rows of the reconciliation workbook whose ``definitief`` is still empty."""
    from analysis.plans.sheets import RECONCILE_SHEET, sheet_rows

    _, found = sheet_rows(path, RECONCILE_SHEET)
    if found is None:
        return 0  # read_reconciliation names the problem
    rows = found
    if not rows or "definitief" not in [str(h) for h in rows[0]]:
        return 0
    j = [str(h) for h in rows[0]].index("definitief")
    return sum(1 for r in rows[1:] if r and r[0] and (len(r) <= j or r[j] is None or str(r[j]).strip() == ""))


def advance(cfg: StudyConfig, *, db: str | Path | None = None) -> PlansState:
    """Take the POP part as far as the study's files allow (what ``popeval run`` does).

    No sample yet: draw it and write blank coder sheets.  Sheets not completely coded: report each
    coder's progress.  Coded: ingest (writing the reconciliation workbook when the coders disagree);
    a reconciliation workbook with open rows: report them.  Nothing written by the researchers is
    ever overwritten.
    """
    from analysis.plans.sheets import coding_progress

    wd = workdir(cfg)
    sheets = wd / "sheets"
    if not (wd / "sample.csv").exists():
        s = draw(cfg, db=db)
        write_coder_sheets(cfg)
        return PlansState(
            "sheets_written",
            f"POP sample of {s.nobs} drawn; blank coding sheets for coders {', '.join(cfg.plans.coders)} written to {sheets} "
            "(personal text: keep them in the protected study folder). Have each coder fill their sheet, then run again.",
        )
    if not sample_matches_texts(cfg):
        raise DataValidationError(
            "The POP texts changed after the sample was drawn",
            file=cfg.path(cfg.plans.texts),
            expected="the texts the sample and the coding sheets were made from",
            found="other texts (SHA-256 differs from sample.json)",
            hint="restore the texts, or draw a new sample with `popeval plans sample --overwrite` (coding starts again)",
        )
    if not all(p.exists() for p in _coder_paths(cfg)):
        paths = write_coder_sheets(cfg)
        return PlansState("sheets_written", f"Blank coding sheets written to {paths[0].parent}; have each coder fill their sheet, then run again.")
    progress = {c: coding_progress(p) for c, p in zip(cfg.plans.coders, _coder_paths(cfg), strict=True)}
    if any(done < n for done, n in progress.values()):
        left = ", ".join(f"{c} {done}/{n}" for c, (done, n) in progress.items())
        return PlansState("coding", f"The coders have not finished (POPs coded: {left}) in {sheets}; run again when every row is coded.", progress)
    rec = sheets / "reconciliation.xlsx"
    if rec.exists():
        n_open = _reconciliation_open(rec)
        if n_open:
            return PlansState("reconciliation", f"{n_open} disagreement(s) not reconciled yet in {rec} (column 'definitief'); run again when all are filled.", progress)
    state, _ = ingest(cfg, n_boot=0)
    return PlansState(state.state, state.message, progress)


def _admin_concordance(cfg: StudyConfig, population: pd.DataFrame | None) -> pd.DataFrame:
    """The linkage's ``attest_matches_training`` among population persons with a POP-attest."""
    if population is None:
        from analysis.population import load_population

        population = load_population(admin_db(cfg), ["person_key", "pop", "pop_attest", "attest_matches_training"])
    sel = population[population["pop_attest"].astype(bool)]
    n_match = int(sel["attest_matches_training"].astype(bool).sum())
    return pd.DataFrame({"comparison": "attest_matches_training", "category": ["match", "no_match"], "n": [n_match, len(sel) - n_match]})


def _primary(df: pd.DataFrame, col: str, threshold: int) -> pd.DataFrame:
    """Counts ``0 < n < threshold`` set to missing (rows that are not a partition: no totals to protect)."""
    out = df.copy()
    out[col] = out[col].astype("Float64").mask((out[col] > 0) & (out[col] < threshold))
    return out


def changes(est: pd.DataFrame, previous: str | Path | None) -> pd.DataFrame:
    """Overall design and combined estimates against the previous wave's bundle (independent samples)."""
    import numpy as np

    from analysis.plans.tables import PLANS_TABLES, read_plans_tables

    cols = list(PLANS_TABLES["plans_changes"][0])
    if not previous:
        return pd.DataFrame(columns=cols)
    prev = read_plans_tables(previous).get("plans_estimates")
    if prev is None:
        raise ConfigError("The previous bundle has no plans estimates", file=Path(previous), expected="tables/plans_estimates.csv", found="none", hint="point [plans] previous (or --previous) at the last wave's bundle")
    a = est[(est["stratum"] == "alle") & est["estimator"].isin(["design", "combined"])]
    b = prev[(prev["stratum"] == "alle")][["measure", "estimator", "estimate", "bse"]]
    m = a.merge(b, on=["measure", "estimator"], suffixes=("", "_prev"))
    se = np.sqrt(m["bse"] ** 2 + m["bse_prev"] ** 2)
    diff = m["estimate"] - m["estimate_prev"]
    q = 1.959963984540054
    return pd.DataFrame(
        {
            "measure": m["measure"],
            "estimator": m["estimator"],
            "estimate": m["estimate"],
            "previous": m["estimate_prev"],
            "difference": diff,
            "bse": se,
            "ci_lower": diff - q * se,
            "ci_upper": diff + q * se,
        }
    )


def previous_bundle(cfg: StudyConfig, previous: str | Path | None = None) -> Path | None:
    """The previous wave's bundle: ``previous`` or ``[plans] previous`` (or none)."""
    if previous:
        return Path(previous)
    return cfg.path(cfg.plans.previous) if cfg.plans.previous else None


def compute_tables(cfg: StudyConfig, *, previous: str | Path | None = None, population: pd.DataFrame | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The ``plans_*`` tables and the part's description, from the reconciled codes.

    Parameters
    ----------
    previous
        The previous wave's bundle (default ``[plans] previous``): fills ``plans_changes``.
    population
        The linked admin population (``pop_attest``, ``attest_matches_training``) when the caller
        has it (``popeval run``); otherwise the admin extracts are linked here.
    """
    import numpy as np

    from analysis.disclosure import suppress
    from analysis.plans.agreement import agreement, disagreements
    from analysis.plans.classify import goal_predictions
    from analysis.plans.codebook import CODEBOOK
    from analysis.plans.concordance import concordance, validate_flags
    from analysis.plans.estimates import combined_estimate, design_estimates
    from analysis.plans.frame import mask_personal
    from analysis.plans.sample import stratum_labels

    wd = workdir(cfg)
    units = _sample_units(cfg)
    codes = pd.read_csv(_need(wd / "codes.csv", "the reconciled codes", "run `popeval plans ingest` first"), dtype=str)
    coded = pd.read_csv(wd / "coded.csv", dtype=str)
    frame = pd.read_parquet(wd / "frame.parquet")
    strata_cols = json.loads((wd / "sample.json").read_text(encoding="utf-8"))["strata"]
    frame["stratum"] = stratum_labels(frame, strata_cols).to_numpy()
    texts = _read_texts(cfg)
    texts = texts[texts["pop_id"].isin(frame["pop_id"])].reset_index(drop=True)
    texts["text"] = texts["text"].map(mask_personal)
    auto = concordance(frame, texts, catalogue(cfg), threshold=cfg.plans.match_threshold)
    from survey.files import atomic_write

    with atomic_write(wd / "concordance.parquet", "wb") as fh:
        auto.to_parquet(fh, index=False)
    sample_codes = units.merge(codes, on="pop_id", how="inner")
    if len(sample_codes) != len(units):
        raise ConfigError("The reconciled codes do not cover the sample", file=wd / "codes.csv", expected=f"{len(units)} POPs", found=f"{len(sample_codes)}", hint="run `popeval plans ingest` again")
    parts = [design_estimates(sample_codes), combined_estimate(sample_codes, auto, frame[["pop_id", "stratum"]])]
    # career goals: a text classifier trained on the coded sample (cross-fitted), beside the human-code estimates
    preds = goal_predictions(sample_codes, texts, frame["pop_id"], seed=cfg.study.seed)
    del texts
    for goal, pr in preds.items():
        parts.append(combined_estimate(sample_codes, None, frame[["pop_id", "stratum"]], measure=goal, predictions=pr))
    est = pd.concat(parts, ignore_index=True)
    thr = cfg.study.disclosure_threshold
    # disclosure: no estimate or count for a stratum with fewer POPs than the threshold
    small = est["N_population"] < thr
    est.loc[small, ["estimate", "bse", "ci_lower", "ci_upper", "n_sample", "N_population"]] = np.nan
    agr = agreement(coded, n_boot=cfg.plans.bootstrap, seed=cfg.study.seed).to_frame()
    dis = disagreements(coded)
    agr["n_disagreements"] = agr["code"].map(dis.groupby("code").size()).fillna(0).astype(int)
    validation = suppress(validate_flags(auto, codes), ["tp", "fp", "fn", "tn"], thr, by="flag").table
    conc_parts = []
    for comp, col in (("pop_vs_attest", "auto_attest_match"), ("pop_vs_followed", "auto_followed_match"), ("attest_vs_followed", "attest_vs_followed")):
        vc = auto[col].value_counts().sort_index()
        conc_parts.append(pd.DataFrame({"comparison": comp, "category": vc.index, "n": vc.to_numpy()}))
    conc_parts.append(_admin_concordance(cfg, population))
    conc = pd.concat(conc_parts, ignore_index=True)
    conc["pct"] = 100 * conc["n"] / conc.groupby("comparison")["n"].transform("sum")
    conc = suppress(conc, "n", thr, by="comparison", pct_cols={"pct": "n"}).table
    prev = previous_bundle(cfg, previous)
    counts = _primary(pd.read_csv(wd / "frame_counts.csv"), "n", thr)
    strata = suppress(pd.read_csv(wd / "sample_strata.csv"), ["N_h", "n_h"], thr, pct_cols={"pi": "N_h"}).table
    agr["n_disagreements"] = _primary(agr, "n_disagreements", thr)["n_disagreements"]
    info: dict[str, Any] = {
        "codebook_version": CODEBOOK.version,
        "sample": {"n": len(units), "strata": list(strata_cols), "allocation": cfg.plans.allocation, "seed": cfg.study.seed},
        "coders": len(cfg.plans.coders),
        "bootstrap": cfg.plans.bootstrap,
        "match_threshold": cfg.plans.match_threshold,
        "disclosure_threshold": thr,
        "previous": None if prev is None else prev.name,
    }
    tables = {
        "plans_frame": counts,
        "plans_sample": strata,
        "plans_agreement": agr,
        "plans_estimates": est,
        "plans_validation": validation,
        "plans_concordance": conc,
        "plans_changes": changes(est, prev),
    }
    return tables, info


def _hash_path(p: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    from survey.hashing import sha256_file

    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(f.relative_to(p).as_posix().encode())
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def input_hashes(cfg: StudyConfig, previous: str | Path | None = None) -> dict[str, dict[str, str]]:
    """The POP part's inputs that exist, with their SHA-256 (manifest ``inputs``, cache keys).

    Texts and the catalogue; the sample and the coders' and reconcilers' workbooks once they exist
    (the researchers' work is an input of the estimates); the previous wave's manifest.
    """
    out: dict[str, dict[str, str]] = {}
    wd = workdir(cfg)
    entries: list[tuple[str, Path]] = []
    if cfg.plans.texts:
        entries.append(("plans/texts", cfg.path(cfg.plans.texts)))
    if cfg.plans.trainings:
        entries.append(("plans/trainings", cfg.path(cfg.plans.trainings)))
    entries.append(("plans/sample", wd / "sample.csv"))
    entries += [(f"plans/sheets/{p.name}", p) for p in _coder_paths(cfg)]
    entries.append(("plans/sheets/reconciliation.xlsx", wd / "sheets" / "reconciliation.xlsx"))
    prev = previous_bundle(cfg, previous)
    if prev is not None:
        entries.append(("plans/previous", prev / "manifest.json"))
    for name, p in entries:
        if p.exists():
            out[name] = {"file": p.name, "sha256": _hash_path(p)}
    return out
