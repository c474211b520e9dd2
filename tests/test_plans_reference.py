"""The POP part's agreement statistics and design-based shares against R (``tests/r/plans_reference.R``).

R computed them on the data it drew and wrote (``tests/r/plans_ratings.csv``, ``plans_sample.csv``):
Cohen's kappa with ``psych::cohen.kappa``, Krippendorff's alpha from its definition (R's ``irr`` is
not packaged by Debian), the shares with ``survey::svymean`` / ``svyby`` on a stratified design with
finite-population correction.  The JSON is committed; these tests do not need R.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.plans.agreement import cohen_kappa, krippendorff_alpha, percent_agreement
from analysis.plans.codebook import GOALS
from analysis.plans.estimates import design_estimates

R = Path(__file__).resolve().parent / "r"
REF = json.loads((R / "plans_reference.json").read_text(encoding="utf-8"))


def test_reference_was_written_by_r() -> None:
    assert REF["versions"]["R"].startswith("R version") and REF["versions"]["psych"]


@pytest.mark.parametrize(("coders", "key"), [(["c1", "c2"], "two"), (["c1", "c2", "c3"], "three")])
def test_agreement_equals_r(coders: list[str], key: str) -> None:
    ratings = pd.read_csv(R / "plans_ratings.csv", dtype=str)
    # the unit order must not matter
    m = ratings.sample(frac=1.0, random_state=3)[coders].to_numpy(dtype=object)
    ref = REF["agreement"][key]
    assert percent_agreement(m) == pytest.approx(ref["percent_agreement"], abs=1e-12)
    assert cohen_kappa(m) == pytest.approx(ref["kappa" if key == "two" else "kappa_mean_pairs"], abs=1e-10)
    assert krippendorff_alpha(m) == pytest.approx(ref["alpha"], abs=1e-10)


def test_design_shares_equal_r_svymean() -> None:
    s = pd.read_csv(R / "plans_sample.csv", dtype={"pop_id": str, "stratum": str})
    n_h = s.groupby("stratum")["pop_id"].transform("size")
    s["weight"] = s["N_h"] / n_h
    for g in GOALS:
        s[g] = "nee"
    est = design_estimates(s.sample(frac=1.0, random_state=5)).set_index(["measure", "stratum"])
    for m in ("no_training", "mismatch", "no_reason"):
        ref = REF["shares"][m]
        assert est.loc[(m, "alle"), "estimate"] == pytest.approx(ref["estimate"], abs=1e-12), m
        assert est.loc[(m, "alle"), "bse"] == pytest.approx(ref["bse"], rel=1e-9), m
        for h, r in ref.get("by_stratum", {}).items():
            assert est.loc[(m, h), "estimate"] == pytest.approx(r["estimate"], abs=1e-12), (m, h)
            assert est.loc[(m, h), "bse"] == pytest.approx(r["bse"], rel=1e-9, abs=1e-14), (m, h)
