"""Build a "foreign" study from a generated demo: the same persons and answers, in the agencies' formats.

* DWSE applications as SPSS ``.sav`` (value labels, SPSS dates) and as Excel ``.xlsx`` (a title row
  and a blank row above the header, real Excel dates, a second sheet), Dutch column names, integer
  application and training numbers, ``schooljaar`` as 2021-2022, ``beslissing`` = Goedgekeurd,
  ISCED 2011 levels, NACE-BEL subclasses without a sector column, head counts, NIS codes, ja/nee;
* VDAB trajectories as a ``;``-separated Latin-1 CSV with CRLF, decimal commas, dd/mm/yyyy dates,
  J/N flags and the career centre as ``Kortrijk Ménen (LBC077)``;
* the survey with its own codes (``Q5_SQ001`` with A1..A6, POP asked as a list, refurl/ipaddr/
  interviewtime), participants as the GUI's CSV with the key in ``attribute_2``;
* person keys upper-case (or, with ``raw_insz=True``, raw INSZ numbers everywhere).

Everything is deterministic (derived from the demo's values and a seeded generator).  The study TOML
describing these files is written next to them; popeval reads them through configuration alone.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from study_toml import study_settings, write_study_toml

SNAP = Path("survey") / "461283" / "20230704T080000Z"

INCENTIVE_NL = {"OC": "Opleidingscheques", "VOV": "Vlaams opleidingsverlof", "VAPOK": "Aanmoedigingspremie opleidingskrediet"}
STATUS_NL = {"goedgekeurd": "Goedgekeurd", "geweigerd": "Geweigerd"}
DOMAIN_CODES = {"ZORG": 1, "ONDERWIJS": 2, "ICT": 3, "TALEN": 4, "TECHNIEK": 5, "MANAGEMENT": 6, "TRANSPORT": 7, "OVERIG": 8}
DOMAIN_LABELS = {1: "Zorg en welzijn", 2: "Onderwijs", 3: "ICT", 4: "Talen", 5: "Techniek", 6: "Management", 7: "Transport", 8: "Overige"}
STATUTE_NL = {"arbeider": "Arbeider", "bediende": "Bediende", "ambtenaar": "Ambtenaar", "uitzendkracht": "Uitzendkracht"}
ISCED = {"laag": (0, 1, 2), "midden": (3, 4), "hoog": (5, 6, 7, 8)}
NACE_BEL = {
    "A": ("01.110", "02.200"), "B": ("08.121",), "C": ("10.711", "25.620", "29.100"), "D": ("35.111",), "E": ("38.110",),
    "F": ("41.201", "43.221"), "G": ("47.111", "46.900"), "H": ("49.410", "52.100"), "I": ("56.101",), "J": ("62.010",),
    "K": ("64.190",), "L": ("68.201",), "M": ("69.101", "71.121"), "N": ("78.200", "81.210"), "O": ("84.111",),
    "P": ("85.310",), "Q": ("86.101", "87.301", "88.101"), "R": ("93.110",), "S": ("96.021",), "T": ("97.000",), "U": ("99.000",),
}
SIZE = {"1-9": (1, 9), "10-49": (10, 49), "50-249": (50, 249), "250+": (250, 4000)}
NIS = {"ANT": ("11002", "10000"), "LIM": ("71016", "70000"), "OVL": ("44021", "40000"), "VBR": ("24062", "20001"),
       "WVL": ("34022", "30000"), "BRU": ("21004", "04000"), "BUI": ("00000",)}
CENTRES = ("Kortrijk Ménen", "Gent Zuid", "Antwerpen Berchem", "Hasselt", "Leuven", "Brugge Sint-Kruis")
LIKERT = {"1": "A1", "2": "A2", "3": "A3", "4": "A4", "5": "A5", "99": "A6"}
REVERSED = {"A1": "A5", "A2": "A4", "A4": "A2", "A5": "A1"}
#: The survey's own outcomes (``own_outcomes=True``) and the demo outcome each one holds.
OWN_OUTCOMES = {"career": "stronger", "skills": "job_better", "confidence": "promotion"}
#: Their labels (``[survey.outcomes]``); ``skills`` is asked on a descending scale (A1 = helemaal akkoord).
OWN_OUTCOME_LABELS = {
    "career": {"nl": "Betere loopbaankansen", "en": "Better career prospects"},
    "skills": {"nl": "Nieuwe vaardigheden in de job", "en": "New skills in the job", "direction": "descending"},
    "confidence": {"nl": "Meer zelfvertrouwen", "en": "More self-confidence"},
}


def _pick(rng: np.random.Generator, options: dict[str, tuple], values: pd.Series) -> list:
    draws = rng.random(len(values))
    return [options[v][int(u * len(options[v]))] for v, u in zip(values, draws, strict=True)]


def _id_ranks(ids: pd.Series, base: int) -> pd.Series:
    """Integer numbers whose order (as text and as numbers) is the order of the original identifiers."""
    order = {v: i for i, v in enumerate(sorted(ids.unique()))}
    return ids.map(order).astype("int64") + base


def build(demo: Path, out: Path, *, raw_insz: bool = False, seed: int = 11, own_outcomes: bool = False, long_keys: bool = False,
          xlsx: bool = True) -> Path:
    """Write the foreign study into ``out`` and return the path of its study TOML.

    With ``own_outcomes`` the survey asks three outcomes of its own (:data:`OWN_OUTCOMES`): the
    demo's first three under other names, the second on a descending scale (A1 = agree most), and
    no fourth.  With ``long_keys`` the person keys are 64 hex digits (another agency's pseudonyms).
    Without ``xlsx`` the Excel copy of the applications is not written (the study reads the
    ``.sav``; writing the ``.xlsx`` costs more than the rest of the study).
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    dwse = pd.read_csv(demo / "admin" / "dwse_applications.csv", dtype=str, keep_default_na=False, na_values=[""])
    vdab = pd.read_csv(demo / "admin" / "vdab_trajectories.csv", dtype=str, keep_default_na=False, na_values=[""])
    parts = json.loads((demo / SNAP / "participants.json").read_text(encoding="utf-8"))
    keys = sorted(set(dwse["person_key"]) | set(vdab["person_key"]) | {p["attribute_1"] for p in parts if p.get("attribute_1")})
    if raw_insz:
        from survey.insz import synthetic_insz

        fake = synthetic_insz(np.random.default_rng(seed + 1), len(keys))
        key_of = dict(zip(keys, fake, strict=True))
    elif long_keys:
        import hashlib

        key_of = {k: hashlib.sha256(k.encode()).hexdigest() for k in keys}
    else:
        key_of = {k: k.upper() for k in keys}

    # ---------------------------------------------------------------- DWSE
    training_no = dwse["training_id"].str[3:].astype("int64")
    f = pd.DataFrame(
        {
            "aanvraagnummer": _id_ranks(dwse["application_id"], 10_000_000),
            "rijksregisternummer_pseudo": dwse["person_key"].map(key_of),
            "maatregel": dwse["incentive"].map(INCENTIVE_NL),
            "schooljaar": dwse["school_year"].str[:5] + (dwse["school_year"].str[:4].astype(int) + 1).astype(str),
            "aanvraagdatum": pd.to_datetime(dwse["application_date"]).dt.date,
            "beslissing": dwse["status"].map(STATUS_NL),
            "opleidingsnummer": training_no,
            "opleidingsdomein": dwse["training_domain"].map(DOMAIN_CODES).astype("int64"),
            "in_opleidingsdatabank": np.where(dwse["in_databank"] == "1", "ja", "nee"),
            "pop_attest": np.where(dwse["pop_based"] == "1", "ja", "nee"),
            "geslacht": dwse["sex"].map({"M": 1, "V": 2}).astype("int64"),
            "geboortejaar": dwse["birth_year"].astype("int64"),
            "onderwijsniveau": np.array(_pick(rng, ISCED, dwse["educ"]), dtype="int64"),
            "nace_code": _pick(rng, NACE_BEL, dwse["nace"]),
            "aantal_werknemers": np.array([int(rng.integers(a, b + 1)) for a, b in (SIZE[s] for s in dwse["company_size"])], dtype="int64"),
            "provincie_nis": _pick(rng, NIS, dwse["province"]),
            "statuut": dwse["statute"].map(STATUTE_NL),
            "dossierbeheerder": rng.choice(["AB", "CD", "EF"], len(dwse)),
        }
    )
    import pyreadstat

    pyreadstat.write_sav(
        f,
        str(out / "aanvragen.sav"),
        column_labels={"rijksregisternummer_pseudo": "Pseudoniem rijksregisternummer", "maatregel": "Maatregel"},
        variable_value_labels={"geslacht": {1: "M", 2: "V"}, "opleidingsdomein": DOMAIN_LABELS},
    )
    if xlsx:
        _write_xlsx(f, out / "aanvragen.xlsx")

    # ---------------------------------------------------------------- VDAB
    def dmy(s: pd.Series) -> pd.Series:
        d = pd.to_datetime(s)
        return d.dt.strftime("%d/%m/%Y").where(s.notna(), "")

    centre = vdab["loopbaancentrum"].str[3:].astype(int)
    v = pd.DataFrame(
        {
            "trajectnummer": vdab["trajectory_id"],
            "klant_id": vdab["person_key"].map(key_of),
            "startdatum": dmy(vdab["start_date"]),
            "einddatum": dmy(vdab["end_date"]),
            "loopbaancentrum": [f"{CENTRES[c % len(CENTRES)]} (LBC{c:03d})" for c in centre],
            "pop_opgemaakt": np.where(vdab["pop_made"] == "1", "J", "N"),
            "pop_attest": np.where(vdab["pop_attest"] == "1", "J", "N"),
            "opleiding_attest": vdab["attest_training_id"].str[3:].astype("Int64").astype(str).replace("<NA>", ""),
            "uren_begeleiding": [f"{h:.1f}".replace(".", ",") for h in rng.uniform(2, 12, len(vdab))],
        }
    )
    with (out / "trajecten.csv").open("w", encoding="latin-1", newline="") as fh:
        v.to_csv(fh, sep=";", index=False, lineterminator="\r\n")

    # ---------------------------------------------------------------- survey
    from survey.lsformat import write_csv_export
    from survey.parse import read_responses

    resp = read_responses(demo / SNAP / "responses.csv")
    rename = {f"EFFECT[SQ00{i}]": f"Q5_SQ00{i}" for i in range(1, 5)}
    rename.update({"TRAINDOMAIN": "Q1", "TRAINDOMAIN[other]": "Q1[other]", "GUIDANCE": "Q2", "POPUSED": "Q3", "HOURS": "Q4",
                   "GENDER": "Q6", "BIRTHYEAR": "Q7", "EDUC": "Q8", "REMARKS": "Q9"})
    rename.update({f"INCENTIVE[SQ00{i}]": f"Q0[SQ00{i}]" for i in range(1, 5)})
    r = resp.rename(columns=rename)
    for i in range(1, 5):
        r[f"Q5_SQ00{i}"] = r[f"Q5_SQ00{i}"].map(lambda x: LIKERT.get(x, x) if isinstance(x, str) else x)
    if own_outcomes:
        r = r.drop(columns=["Q5_SQ004"])
        r["Q5_SQ002"] = r["Q5_SQ002"].map(lambda x: REVERSED.get(x, x) if isinstance(x, str) else x)
    r["Q3"] = r["Q3"].map({"Y": "A1", "N": "A2"})
    r["refurl"] = "https://enquete.example.invalid/461283"
    r["ipaddr"] = "192.0.2.1"
    r["interviewtime"] = [f"{t:.2f}" for t in rng.uniform(200, 900, len(r))]
    if len(r) > 3:
        from survey.insz import synthetic_insz

        r.loc[r.index[2], "Q9"] = f"mijn nummer is {synthetic_insz(np.random.default_rng(5), 1)[0]} graag bellen"
    snap = out / "enquete"
    snap.mkdir(exist_ok=True)
    cols = list(r.columns)
    rows = [{c: (None if (x is None or (isinstance(x, float) and np.isnan(x))) else x) for c, x in zip(cols, rec, strict=True)} for rec in r.itertuples(index=False)]
    (snap / "responses.csv").write_bytes(write_csv_export(cols, rows))
    manifest = json.loads((demo / SNAP / "manifest.json").read_text(encoding="utf-8"))
    from survey.hashing import sha256_file

    files = {"responses.csv": sha256_file(snap / "responses.csv")}
    (snap / "manifest.json").write_text(json.dumps({**manifest, "files": files}, indent=2) + "\n", encoding="utf-8")
    part = pd.DataFrame(
        {
            "tid": [p["tid"] for p in parts],
            "firstname": "", "lastname": "",
            "email": [p["participant_info"]["email"] for p in parts],
            "emailstatus": "OK",
            "token": [p["token"] for p in parts],
            "language": "nl",
            "attribute_1": "regio",
            "attribute_2": [key_of.get(p["attribute_1"], "") if p.get("attribute_1") else "" for p in parts],
        }
    )
    part.to_csv(out / "deelnemers.csv", index=False, lineterminator="\n")
    shutil.copy(demo / "provenance.json", out / "provenance.json")
    return write_study_toml(out / "study.toml", _settings(raw_insz=raw_insz, own_outcomes=own_outcomes),
                            comment="A study described through configuration alone: the files as the agencies deliver them.")


def _write_xlsx(f: pd.DataFrame, path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Aanvragen")
    ws.append(["Aanvragen opleidingsincentives - export DWSE"])
    ws.append([])
    ws.append(list(f.columns))
    labels = {"geslacht": {1: "M", 2: "V"}, "opleidingsdomein": DOMAIN_LABELS}
    cols = [f[c].map(labels[c]).tolist() if c in labels else f[c].tolist() for c in f.columns]
    for rec in zip(*cols, strict=True):
        ws.append([dt.datetime(x.year, x.month, x.day) if isinstance(x, dt.date) else (x.item() if hasattr(x, "item") else x) for x in rec])
    info = wb.create_sheet("Toelichting")
    info.append(["Bron", "DWSE"])
    wb.save(path)


#: The survey's columns: popeval variable = the survey's question code.
SURVEY_COLUMNS = {
    "inc_oc": "Q0[SQ001]", "inc_vov": "Q0[SQ002]", "inc_vapok": "Q0[SQ003]", "inc_none": "Q0[SQ004]",
    "train_domain": "Q1", "train_domain_other": "Q1[other]", "guidance": "Q2", "pop_reported": "Q3", "hours": "Q4",
    "stronger": "Q5_SQ001", "job_better": "Q5[SQ002]", "promotion": "Q5_SQ003", "satisfaction": "Q5_SQ004",
    "sex_reported": "Q6", "birth_year_reported": "Q7", "educ_reported": "Q8", "remarks": "Q9",
}
#: The answer codes of a Likert question: the survey's code = popeval's code.
LIKERT_ANSWERS = {a: c for c, a in LIKERT.items()}

DWSE = {
    "file": "aanvragen.sav",
    "true_values": ["ja"],
    "false_values": ["nee"],
    "columns": {
        "application_id": "aanvraagnummer", "person_key": "rijksregisternummer_pseudo", "incentive": "maatregel",
        "school_year": "schooljaar", "application_date": "aanvraagdatum", "status": "beslissing",
        "training_id": "opleidingsnummer", "training_domain": "opleidingsdomein", "in_databank": "in_opleidingsdatabank",
        "pop_based": "pop_attest", "sex": "geslacht", "birth_year": "geboortejaar", "educ": "onderwijsniveau",
        "nace": "nace_code", "company_size": "aantal_werknemers", "province": "provincie_nis", "statute": "statuut",
    },
    "rules": {"school_year": "school_year", "educ": "isced2011", "nace": "nace_bel", "company_size": "headcount", "province": "nis"},
    "codes": {
        "incentive": {"Opleidingscheques": "OC", "Vlaams opleidingsverlof": "VOV", "Aanmoedigingspremie opleidingskrediet": "VAPOK"},
        "status": {"Goedgekeurd": "goedgekeurd", "Geweigerd": "geweigerd"},
        "training_domain": {"Zorg en welzijn": "ZORG", "Onderwijs": "ONDERWIJS", "ICT": "ICT", "Talen": "TALEN", "Techniek": "TECHNIEK",
                            "Management": "MANAGEMENT", "Transport": "TRANSPORT", "Overige": "OVERIG"},
        "province": {"00000": "BUI"},
        "statute": {"Arbeider": "arbeider", "Bediende": "bediende", "Ambtenaar": "ambtenaar", "Uitzendkracht": "uitzendkracht"},
    },
}

VDAB = {
    "file": "trajecten.csv",
    "columns": {
        "trajectory_id": "trajectnummer", "person_key": "klant_id", "start_date": "startdatum", "end_date": "einddatum",
        "loopbaancentrum": "loopbaancentrum", "pop_made": "pop_opgemaakt", "pop_attest": "pop_attest",
        "attest_training_id": "opleiding_attest",
    },
    "extract": {"loopbaancentrum": r"LBC\d{3}"},
}


def _settings(*, raw_insz: bool, own_outcomes: bool) -> dict[str, dict]:
    """The foreign study's settings: its files, the survey's codes and the extracts' columns, codes and rules."""
    demo_outcomes = ("stronger", "job_better", "promotion", "satisfaction")
    outcomes = {own: SURVEY_COLUMNS[demo] for own, demo in OWN_OUTCOMES.items()} if own_outcomes else {o: SURVEY_COLUMNS[o] for o in demo_outcomes}
    columns: dict[str, str] = {}
    for var, code in SURVEY_COLUMNS.items():
        if var == demo_outcomes[0]:
            columns.update(outcomes)  # the outcomes where the demo's are
        if var not in demo_outcomes:
            columns[var] = code
    survey: dict = {"survey_id": 461283, "snapshot": "enquete", "participants": "deelnemers.csv", "key_attribute": "attribute_2"}
    if own_outcomes:
        survey["outcomes"] = OWN_OUTCOME_LABELS
    survey["columns"] = columns
    survey["answers"] = {**dict.fromkeys(outcomes, LIKERT_ANSWERS), "pop_reported": {"A1": "Y", "A2": "N"}}
    return study_settings(
        "nieuwe-golf", methods=("matching", "regression", "ipw", "naive"), survey=survey,
        admin={"pseudonymise": raw_insz, "dwse": DWSE, "vdab": VDAB},
    )
