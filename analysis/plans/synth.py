"""Synthetic POP documents with known codes, and simulated coders, for the demo study.

:func:`generate_plans` reads the admin extracts a synthetic study already wrote (``admin/``) and adds

* ``plans/pop_texts.parquet``: one Dutch POP text per loopbaancheque trajectory with a POP
  (``trajectory_id``, ``text``) — the documented table input format of real POPs;
* ``plans/trainings.csv``: the training catalogue (``training_id``, ``training_name``, ``provider``),
  i.e. the names behind the training ids of the attests and the applications;
* ``truth/plans_codes.parquet``: the true codes of every POP (never read by the pipeline).

The texts have a situation, goals and an action plan, with accents, typos and varied phrasing.  Some
plans recommend no training, some name a training without a reason, some name a training other than
the one on the POP-attest, and a few name two trainings or only a vague one.  The shares vary by
incentive and career centre, so that stratified estimates differ from unweighted ones.

:func:`simulate_coders` fills coding sheets from the truth with coder-specific, realistic errors,
:func:`simulate_reconciliation` fills the reconciliation sheet, and :func:`simulate_study` does the
whole coding work of a study (``popeval plans simulate --complete``; the demo's stand-in for the human work).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from analysis.plans.codebook import CODEBOOK, GOALS
from analysis.plans.normalise import strip_accents

__all__ = ["PlanParams", "generate_plans", "simulate_coders", "simulate_reconciliation", "simulate_study", "simulated_coder", "training_catalogue"]

_BASE_NAMES: dict[str, tuple[str, ...]] = {
    "ZORG": (
        "Bachelor in de verpleegkunde",
        "Zorgkundige",
        "Bachelor in de ergotherapie",
        "Bachelor in de vroedkunde",
        "Graduaat orthopedagogie",
        "Opvoeder-begeleider",
        "Postgraduaat palliatieve zorg",
        "Bachelor in het sociaal werk",
        "Postgraduaat psychotherapie",
    ),
    "ONDERWIJS": (
        "Educatieve bachelor lager onderwijs",
        "Educatieve bachelor secundair onderwijs",
        "Educatieve graduaatsopleiding secundair onderwijs",
        "Master in de onderwijskunde",
        "Educatieve bachelor kleuteronderwijs",
        "Specifieke lerarenopleiding",
    ),
    "ICT": (
        "Graduaat programmeren",
        "Webdesign en webontwikkeling",
        "Netwerkbeheer",
        "Data-analyse met Python",
        "Cybersecurity voor professionals",
        "Digitale vaardigheden voor kantoorwerk",
    ),
    "TALEN": ("Nederlands tweede taal", "Frans richtgraad 2", "Engels voor professionals", "Spaans voor beginners", "Opleiding vertaler-tolk"),
    "TECHNIEK": ("Elektrotechniek", "Industriële automatisering", "Lassen en constructie", "HVAC-technicus", "Bachelor in de elektromechanica"),
    "MANAGEMENT": (
        "Graduaat boekhouden",
        "Bachelor in het bedrijfsmanagement",
        "Projectmanagement",
        "HR-management",
        "Leidinggeven aan teams",
        "Bedrijfsbeheer",
    ),
    "TRANSPORT": ("Rijbewijs C", "Heftruckchauffeur", "Logistiek medewerker", "Transportplanner"),
    "OVERIG": ("Coaching en begeleiding", "Grafische vormgeving", "Fotografie", "Hovenier", "Marketing en communicatie", "Kunstgeschiedenis"),
}
_PROVIDERS = (
    "CVO Antwerpen",
    "HOGENT",
    "Artevelde Hogeschool",
    "Thomas More",
    "UCLL",
    "VIVES",
    "Syntra West",
    "Syntra Midden-Vlaanderen",
    "CVO Leerstad",
    "PXL",
    "Odisee",
    "Karel de Grote Hogeschool",
    "Howest",
    "CVO VITO",
    "Hogeschool West-Vlaanderen",
)
_VAGUE = (
    "een opleiding in de zorg",
    "een bijscholing rond leidinggeven",
    "een taalcursus",
    "een of andere IT-opleiding",
    "een cursus die aansluit bij mijn interesses",
    "een opleiding in het onderwijs",
)

_SITUATION = (
    "{naam} werkt al {jaar} jaar als {job} in een {bedrijf}.",
    "Situatie: ik ben {job} en werk sinds {jaar} jaar bij een {bedrijf}.",
    "Ik werk momenteel {regime} als {job} ({jaar} jaar ervaring) in een {bedrijf}.",
    "Huidige situatie — {job}, {regime}, {jaar} jaar in dienst bij een {bedrijf}.",
)
_JOBS = ("administratief bediende", "verkoopster", "logistiek medewerker", "zorgkundige", "leerkracht", "boekhouder", "IT-consultant", "onthaalmedewerker", "magazijnier", "opvoedster", "teamleider", "kinderbegeleidster", "productieoperator")
_COMPANIES = ("kmo", "groot bedrijf", "ziekenhuis", "school", "openbaar bestuur", "woonzorgcentrum", "interimkantoor", "familiebedrijf")
_REGIME = ("voltijds", "deeltijds (4/5)", "halftijds", "voltijds in ploegen")
_NAMES = ("Sofie", "An", "Tom", "Kristof", "Els", "Nathalie", "Jeroen", "Fatima", "Lien", "Bart", "Özlem", "Hélène", "Wouter", "Inge", "Mohamed")

_GOAL_TEXT: dict[str, tuple[str, ...]] = {
    "goal_talent": (
        "Ik wil mijn competenties verder ontwikkelen en doorgroeien in mijn huidige job.",
        "Mijn doel is om te groeien naar een coördinerende rol binnen mijn team.",
        "Ik wil mijn talenten beter benutten en me specialiseren in mijn vakgebied.",
        "Ik wil sterker staan in mijn functie en meer verantwoordelijkheid opnemen.",
    ),
    "goal_balance": (
        "Ik zoek een beter evenwicht tussen werk en privé.",
        "De combinatie van werk en gezin weegt zwaar; ik wil minder stress en minder pendelen.",
        "Ik wil mijn job werkbaar houden tot aan mijn pensioen.",
        "Na een periode van overbelasting wil ik werk dat beter haalbaar is.",
    ),
    "goal_reorientation": (
        "Ik wil me heroriënteren naar een andere sector.",
        "Ik droom ervan om een eigen zaak op te starten als zelfstandige in bijberoep.",
        "Ik wil op zoek naar een nieuwe job waarin ik me beter voel.",
        "Ik overweeg een volledige carrièreswitch en wil het onderwijs of de zorg in.",
    ),
}
_NO_GOAL_TEXT = ("We bespraken mijn loopbaan tot nu toe.", "Het gesprek ging vooral over mijn huidige situatie.")
_REASON = (
    "zodat ik de stap naar {doel} kan zetten",
    "om mijn kansen op {doel} te vergroten",
    "omdat ik daarmee {doel} kan realiseren",
    "want dat is nodig voor {doel}",
)
_REASON_GOAL = {
    "goal_talent": "een functie met meer verantwoordelijkheid",
    "goal_balance": "werk dat beter combineerbaar is met mijn gezin",
    "goal_reorientation": "een nieuwe job in een andere sector",
}
_TRAIN_SENT = (
    "Ik schrijf me in voor de opleiding {t}",
    "Actie: inschrijven voor {t}",
    "Volgend schooljaar start ik met {t}",
    "Ik ga de opleiding '{t}' volgen",
    "Opleiding: {t}",
)
_OTHER_ACTIONS = (
    "Ik ga mijn cv herwerken en solliciteren.",
    "Ik plan een gesprek met mijn leidinggevende over mijn takenpakket.",
    "Ik ga netwerken via LinkedIn en infosessies bijwonen.",
    "Ik bekijk de mogelijkheden van tijdskrediet.",
)
_NO_TRAINING = (
    "Een opleiding is op dit moment niet nodig.",
    "We spraken af dat ik eerst intern solliciteer; een opleiding is niet aan de orde.",
    "Geen opleiding voorzien.",
)


@dataclass(frozen=True)
class PlanParams:
    """Parameters of the POP generator (defaults follow the study's findings)."""

    p_no_training: tuple[tuple[str, float], ...] = (("geen", 0.24), ("OC", 0.12), ("VOV", 0.10), ("VAPOK", 0.08))
    p_reason: float = 0.53
    p_vague: float = 0.04
    p_mismatch: float = 0.23
    centre_sd: float = 0.7
    p_goal: tuple[float, float, float] = (0.55, 0.30, 0.40)
    p_two_trainings: float = 0.08
    p_typo: float = 0.25
    p_provider: float = 0.5
    p_personal: float = 0.1


class _Draws(Protocol):
    def random(self) -> float: ...

    def integers(self, low: int, high: int) -> int: ...


class _Uniforms:
    """Uniform draws handed out one by one from blocks drawn at once (the generator's scalar calls).

    ``random()`` and ``integers(low, high)`` behave as :class:`numpy.random.Generator`'s scalar
    draws (``integers`` as ``low + floor(u * (high - low))``), at a fraction of their per-call cost.
    """

    def __init__(self, rng: np.random.Generator, block: int = 1 << 20) -> None:
        # the next uniform: a C-level iterator over the blocks, each drawn when the previous one is used up
        uniform: Callable[[], float] = itertools.chain.from_iterable(iter(lambda: rng.random(block).tolist(), None)).__next__

        def integers(low: int, high: int) -> int:
            return low + int(uniform() * (high - low))

        self.random = uniform
        self.integers = integers


def _typo(s: str, rng: _Draws) -> str:
    if len(s) < 6:
        return s
    k = int(rng.integers(0, 4))
    i = int(rng.integers(1, len(s) - 2))
    if k == 0:  # swap
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    if k == 1:  # drop
        return s[:i] + s[i + 1 :]
    if k == 2:  # double
        return s[:i] + s[i] + s[i:]
    return strip_accents(s)


def _variant(name: str, rng: _Draws, p_typo: float) -> str:
    """A way a counsellor might write a training name."""
    v = name
    r = rng.random()
    if r < 0.3:
        v = v.lower()
    elif r < 0.45:
        v = v.replace(" in de ", " ").replace(" in het ", " ")
    elif r < 0.55:
        v = v.replace("Bachelor", "Ba.").replace("Graduaat", "graduaat").replace("Educatieve bachelor", "lerarenopleiding")
    if rng.random() < p_typo:
        v = _typo(v, rng)
    return v


def training_catalogue(training_ids: pd.Series, domains: pd.Series, seed: int) -> pd.DataFrame:
    """Names and providers for training ids (one row per id), drawn from their domains."""
    rng = np.random.default_rng([seed, 1717])
    frame = pd.DataFrame({"training_id": training_ids, "domain": domains}).drop_duplicates("training_id").sort_values("training_id")
    names, provs = [], []
    for dom in frame["domain"].fillna("OVERIG"):
        base = _BASE_NAMES.get(str(dom), _BASE_NAMES["OVERIG"])
        names.append(base[int(rng.integers(0, len(base)))])
        provs.append(_PROVIDERS[int(rng.integers(0, len(_PROVIDERS)))])
    return pd.DataFrame({"training_id": frame["training_id"].to_numpy(), "training_name": names, "provider": provs})


def _formatted_insz(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` synthetic INSZ numbers written as a counsellor would (``yy.mm.dd-nnn.cc``)."""
    from survey.insz import synthetic_insz

    return [f"{v[:2]}.{v[2:4]}.{v[4:6]}-{v[6:9]}.{v[9:]}" for v in synthetic_insz(rng, n)]


@dataclass(frozen=True)
class _Catalogue:
    """What the texts draw training names from: the catalogue and the names of every domain."""

    frame: pd.DataFrame
    name_of: dict[str, str]
    provider_of: dict[str, str]
    #: every training name of every domain, sorted
    all_names: list[str]


@dataclass(frozen=True)
class _PlanCodes:
    """The true codes of one POP, and what the text is written from."""

    goals: dict[str, bool]
    recommended: bool
    vague: bool
    reason: bool
    #: the training the POP names (``None``: none, or a vague one)
    pop_training: str | None
    #: the training name on the POP-attest (``None``: no attest)
    attest_name: str | None
    status: str
    #: the POP names the attest's training as well (a second, dismissed training)
    two: bool


def generate_plans(out: str | Path, seed: int = 2023, params: PlanParams | None = None) -> dict[str, int]:
    """Write POP texts, the training catalogue and the true codes for a synthetic study.

    Parameters
    ----------
    out
        The study folder written by :func:`analysis.synth.generate` (reads ``admin/``).
    seed
        The seed (same seed, same files).
    params
        Generator parameters.

    Returns
    -------
    dict
        Counts: ``pops`` (texts written), ``with_attest``, ``trainings``.
    """
    from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
    from survey.validate import read_table

    p = params or PlanParams()
    out = Path(out)
    admin = out / "admin"
    ext = "parquet" if (admin / "vdab_trajectories.parquet").exists() else "csv"
    traj = read_table(admin / f"vdab_trajectories.{ext}", VDAB_TRAJECTORIES)
    dwse = read_table(admin / f"dwse_applications.{ext}", DWSE_APPLICATIONS)
    rng = np.random.default_rng([seed, 17])

    cat = training_catalogue(
        pd.concat([dwse["training_id"], traj["attest_training_id"].dropna()]),
        pd.concat([dwse["training_domain"].astype(str), pd.Series("OVERIG", index=traj["attest_training_id"].dropna().index)]),
        seed,
    )
    catalogue = _Catalogue(
        frame=cat,
        name_of=dict(zip(cat["training_id"], cat["training_name"], strict=True)),
        provider_of=dict(zip(cat["training_id"], cat["provider"], strict=True)),
        all_names=sorted({n for names in _BASE_NAMES.values() for n in names}),
    )

    from analysis.plans.frame import NO_INCENTIVE, followed_trainings

    followed = followed_trainings(traj, dwse)
    pops = traj[traj["pop_made"].astype(bool)].reset_index(drop=True)
    pops = pops.merge(followed, on="trajectory_id", how="left")
    pops["incentive"] = pops["incentive"].fillna(NO_INCENTIVE)
    n = len(pops)
    centres = sorted(pops["loopbaancentrum"].unique())
    c_eff = dict(zip(centres, rng.normal(0.0, p.centre_sd, len(centres)), strict=True))

    texts: list[str] = []
    truth_rows: list[dict[str, object]] = []
    personal = rng.random((n, 2)) < p.p_personal  # a POP that names the person's INSZ / e-mail
    fake_insz = iter(_formatted_insz(rng, int(personal[:, 0].sum())))
    written_on = _day_month_year(pd.to_datetime(pops["end_date"].fillna(pops["start_date"])))
    draws = _Uniforms(rng)
    row: Any
    # the columns the texts are written from, as Python objects (no pandas step per value)
    rows = pops[["trajectory_id", "loopbaancentrum", "incentive", "pop_attest", "attest_training_id", "followed_training_id"]].astype(object)
    for (insz_named, email_named), wrote, row in zip(personal.tolist(), written_on, rows.itertuples(index=False), strict=True):
        codes = _draw_codes(row, c_eff[row.loopbaancentrum], catalogue, p, draws)
        lines = [f"PERSOONLIJK ONTWIKKELINGSPLAN — {row.loopbaancentrum}", ""]
        if insz_named:
            lines.append(f"Rijksregisternummer: {next(fake_insz)}")
        if email_named:
            lines.append(f"Contact: {_NAMES[int(draws.integers(0, len(_NAMES)))].lower()}.{int(draws.integers(10, 99))}@voorbeeld.be")
        lines += _plan_body(row, codes, catalogue, p, draws)
        lines += ["", f"Opgemaakt door de loopbaanbegeleider op {wrote}."]
        texts.append("\n".join(lines) + "\n")
        truth_rows.append(_truth_row(row.trajectory_id, codes))
    _write_plans(out, pops, texts, cat, pd.DataFrame(truth_rows))
    return {"pops": n, "with_attest": int(pops["pop_attest"].astype(bool).sum()), "trainings": len(cat)}


def _day_month_year(dates: pd.Series) -> list[str]:
    """``dates.dt.strftime("%d/%m/%Y")`` as a list, by slicing ISO dates (years 1000-9999, no missing date)."""
    iso = np.datetime_as_string(dates.to_numpy(dtype="datetime64[D]"), unit="D").tolist() if len(dates) else []
    if dates.isna().any() or any(len(d) != 10 for d in iso):
        return list(dates.dt.strftime("%d/%m/%Y").tolist())
    return [f"{d[8:10]}/{d[5:7]}/{d[:4]}" for d in iso]


def _draw_codes(row: Any, ce: float, catalogue: _Catalogue, p: PlanParams, draws: _Draws) -> _PlanCodes:
    """The true codes of one POP (``row``: a trajectory with a POP; ``ce``: its centre's effect)."""
    inc = str(row.incentive)
    goals = {g: bool(draws.random() < (0.6 if (g == "goal_reorientation" and inc == "VAPOK") else p.p_goal[k])) for k, g in enumerate(GOALS)}
    recommended = bool(draws.random() >= dict(p.p_no_training).get(inc, 0.2) * math.exp(0.3 * ce))
    has_attest = bool(row.pop_attest) and isinstance(row.attest_training_id, str)
    attest_name = catalogue.name_of.get(row.attest_training_id) if has_attest else None
    vague = recommended and draws.random() < p.p_vague
    reason = recommended and draws.random() < min(0.95, p.p_reason * math.exp(-0.25 * ce))
    pop_train: str | None = None
    two = False
    status = "onbepaald"
    all_names = catalogue.all_names
    if recommended and not vague:
        if attest_name is None:
            pop_train = all_names[int(draws.integers(0, len(all_names)))]
        else:
            logit = math.log(p.p_mismatch / (1 - p.p_mismatch))
            mis = draws.random() < 1 / (1 + math.exp(-(logit + ce)))
            if not mis:
                pop_train = attest_name
                status = "match"
            else:
                fol = row.followed_training_id if isinstance(row.followed_training_id, str) else None
                fol_name = catalogue.name_of.get(fol) if fol else None
                if fol_name and fol_name != attest_name and draws.random() < 0.7:
                    pop_train = fol_name
                else:
                    others = [x for x in all_names if x != attest_name]
                    pop_train = others[int(draws.integers(0, len(others)))]
                status = "mismatch"
                two = draws.random() < p.p_two_trainings
    return _PlanCodes(
        goals=goals,
        recommended=recommended,
        vague=vague,
        reason=reason,
        pop_training=pop_train,
        attest_name=attest_name,
        status=status,
        two=two,
    )


def _plan_body(row: Any, codes: _PlanCodes, catalogue: _Catalogue, p: PlanParams, draws: _Draws) -> list[str]:
    """The text's sections: situation, career goals and action plan."""
    goals = codes.goals
    sit = _SITUATION[int(draws.integers(0, len(_SITUATION)))].format(
        naam=_NAMES[int(draws.integers(0, len(_NAMES)))],
        jaar=int(draws.integers(2, 25)),
        job=_JOBS[int(draws.integers(0, len(_JOBS)))],
        bedrijf=_COMPANIES[int(draws.integers(0, len(_COMPANIES)))],
        regime=_REGIME[int(draws.integers(0, len(_REGIME)))],
    )
    lines = ["1. Situatie", sit, "", "2. Loopbaandoelen"]
    goal_lines = [_GOAL_TEXT[g][int(draws.integers(0, 4))] for g in GOALS if goals[g]]
    lines += goal_lines or [_NO_GOAL_TEXT[int(draws.integers(0, len(_NO_GOAL_TEXT)))]]
    lines += ["", "3. Actieplan", _OTHER_ACTIONS[int(draws.integers(0, len(_OTHER_ACTIONS)))]]
    if not codes.recommended:
        lines.append(_NO_TRAINING[int(draws.integers(0, len(_NO_TRAINING)))])
        return lines
    if codes.vague:
        t = _VAGUE[int(draws.integers(0, len(_VAGUE)))]
    else:
        t = _variant(str(codes.pop_training), draws, p.p_typo)
        if isinstance(row.attest_training_id, str) and draws.random() < p.p_provider:
            t += f" bij {catalogue.provider_of.get(row.attest_training_id, _PROVIDERS[0])}"
    sent = _TRAIN_SENT[int(draws.integers(0, len(_TRAIN_SENT)))].format(t=t)
    if codes.reason:
        gl = [g for g in GOALS if goals[g]] or ["goal_talent"]
        g = gl[int(draws.integers(0, len(gl)))]
        sent += ", " + _REASON[int(draws.integers(0, len(_REASON)))].format(doel=_REASON_GOAL[g])
    lines.append(sent + ".")
    if codes.two and codes.attest_name is not None:
        lines.append(f"Eerder overwoog ik {_variant(codes.attest_name, draws, 0.0)}, maar dat past minder goed.")
    return lines


def _truth_row(trajectory_id: str, codes: _PlanCodes) -> dict[str, object]:
    """One POP's row of ``truth/plans_codes.parquet``."""
    return {
        "trajectory_id": trajectory_id,
        **{g: "ja" if codes.goals[g] else "nee" for g in GOALS},
        "training_recommended": "ja" if codes.recommended else "nee",
        "reason_derivable": ("ja" if codes.reason else "nee") if codes.recommended else "nvt",
        "attest_match": codes.status,
        "pop_training_name": codes.pop_training,
        # what makes a POP hard to code (the simulated coders err more often on it)
        "difficulty": "vague" if codes.vague else "two_trainings" if codes.two else "",
    }


def _write_plans(out: Path, pops: pd.DataFrame, texts: list[str], cat: pd.DataFrame, truth: pd.DataFrame) -> None:
    """Write the texts and the catalogue (``plans/``) and the true codes (``truth/``)."""
    plans_dir = out / "plans"
    plans_dir.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    tab = pa.table({"trajectory_id": pops["trajectory_id"].astype(str).to_numpy(), "text": texts})
    pq.write_table(tab.replace_schema_metadata(None), plans_dir / "pop_texts.parquet", compression="zstd")
    cat.to_csv(plans_dir / "trainings.csv", index=False, lineterminator="\n")
    tdir = out / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(truth, preserve_index=False).replace_schema_metadata(None), tdir / "plans_codes.parquet", compression="zstd")


#: Each simulated coder's base error rate per code; hard POPs (see ``difficulty`` in the truth) and
#: the codes that need judgement are coded wrongly more often, and each coder has a leaning.
_ERROR_RATE = (0.04, 0.06, 0.08, 0.05)
_HARD_FACTOR = {"vague": 5.0, "two_trainings": 5.0, "": 1.0}
_CODE_FACTOR = {"attest_match": 1.5, "reason_derivable": 1.5, "goal_balance": 1.3}
#: (code, value a coder leans towards): coder k leans with the k-th entry (the first coder has none).
_LEANING = ((None, None), ("goal_balance", "ja"), ("reason_derivable", "nee"), ("goal_talent", "ja"))


def _perturb(value: str, allowed: tuple[str, ...], rng: np.random.Generator, rate: float) -> str:
    if rng.random() >= rate:
        return value
    others = [a for a in allowed if a != value]
    return others[int(rng.integers(0, len(others)))]


def simulated_coder(truth: pd.DataFrame, k: int, seed: int = 2023) -> Callable[[str], dict[str, str]]:
    """The ``k``-th simulated coder: POP id -> its codes, from ``truth`` (indexed by POP id) with errors.

    See :func:`simulate_coders` for the error model; the same ``(k, seed)`` codes the same way.
    """
    rng = np.random.default_rng([seed, 99, k])
    rate = _ERROR_RATE[k % len(_ERROR_RATE)]
    lean_code, lean_value = _LEANING[k % len(_LEANING)]

    def code(pop_id: str) -> dict[str, str]:
        t = truth.loc[pop_id]
        hard = _HARD_FACTOR.get(str(t["difficulty"] or ""), 1.0)
        vals = {}
        for c in CODEBOOK.codes:
            v = _perturb(str(t[c.name]), tuple(a for a in c.allowed if a != "nvt"), rng, min(0.6, rate * hard * _CODE_FACTOR.get(c.name, 1.0)))
            if c.name == lean_code and v != lean_value and rng.random() < rate:
                v = str(lean_value)
            vals[c.name] = v
        if vals["training_recommended"] == "nee":
            vals["reason_derivable"] = "nvt"
        elif vals["reason_derivable"] == "nvt":
            vals["reason_derivable"] = "nee"
        return vals

    return code


def simulate_coders(sheets_dir: str | Path, truth_path: str | Path, seed: int = 2023) -> list[Path]:
    """Fill every coder sheet in ``sheets_dir`` from the true codes with coder-specific errors.

    Errors are realistic rather than uniform: every coder has a base error rate; a POP that names a
    vague training or two trainings is miscoded five times as often on every code; the codes that need judgement (``attest_match``,
    ``reason_derivable``, ``goal_balance``) more often than the plain ones; and each coder after the
    first leans towards one value of one code (codes it where the truth is the other value, at the
    base rate).  Dependent codes stay consistent (``reason_derivable`` is ``nvt`` exactly when no
    training is recommended), as the codebook's decision rules demand.
    """
    from analysis.plans.sheets import coder_sheets, fill_sheet

    truth = pd.read_parquet(truth_path).set_index("trajectory_id")
    if "difficulty" not in truth.columns:
        truth["difficulty"] = ""
    done = []
    for k, path in enumerate(coder_sheets(sheets_dir)):
        code = simulated_coder(truth, k, seed)
        fill_sheet(path, code)
        done.append(path)
    return done


def simulate_study(cfg: Any, truth_path: str | Path) -> Any:
    """The demo's coding work, start to end: the state after the coders and the reconcilers.

    Draws the sample and writes blank sheets when there are none (or when the sample was drawn from
    other POP texts, as after regenerating the demo), fills the coder sheets with
    :func:`simulate_coders`, and, when the coders disagree, writes the reconciliation sheet and fills
    it with :func:`simulate_reconciliation`.  Deterministic: the same study gives the same sheets.

    Returns
    -------
    analysis.plans.stage.PlansState
        ``coded``: the reconciled codes are in the working folder.
    """
    from analysis.plans.sheets import coding_progress
    from analysis.plans.stage import (
        PlansState,
        draw,
        ingest,
        sample_matches_texts,
        workdir,
        write_coder_sheets,
    )

    wd = workdir(cfg)
    fresh = not (wd / "sample.csv").exists() or not sample_matches_texts(cfg)
    sheets = [wd / "sheets" / f"coder_{c}.xlsx" for c in cfg.plans.coders]
    done_before = not fresh and (wd / "codes.csv").exists() and all(p.exists() for p in sheets)
    if done_before and all(done == n for done, n in map(coding_progress, sheets)):
        # already done for these texts: leave the files (and their hashes) as they are
        return PlansState("coded", f"The demo's POP sample is already coded and reconciled ({wd / 'codes.csv'}).")
    if fresh:
        draw(cfg, overwrite=True)
    write_coder_sheets(cfg, overwrite=True)
    (wd / "sheets" / "reconciliation.xlsx").unlink(missing_ok=True)
    simulate_coders(wd / "sheets", truth_path, seed=cfg.study.seed)
    state, _ = ingest(cfg, n_boot=0)
    if state.state == "reconciliation":
        simulate_reconciliation(wd / "sheets" / "reconciliation.xlsx", truth_path)
        state, _ = ingest(cfg, n_boot=0)
    return state


def simulate_reconciliation(path: str | Path, truth_path: str | Path) -> Path:
    """Fill the reconciliation sheet with the true codes (the demo's reconciling researcher)."""
    from analysis.plans.sheets import fill_reconciliation

    truth = pd.read_parquet(truth_path).set_index("trajectory_id")
    return fill_reconciliation(path, lambda pop_id, code: str(truth.loc[pop_id, code]))
