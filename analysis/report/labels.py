"""Labels the report's tables and figures print, in Dutch and English.

The prose of the report lives in ``reports/evaluation-nl.qmd`` and ``reports/evaluation-en.qmd``.
What stays here is vocabulary a table or figure needs and that the bundle holds as codes: column
headers, method names, response-flow steps, weight statistics, verdicts and axis titles.  Category
and variable labels come from the codebook (:mod:`survey.datamodel`, :mod:`survey.questionnaire`)
through :func:`category_label` and :func:`variable_label`; outcome labels from the bundle when it
carries them, else from the questionnaire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from survey.errors import ConfigError

__all__ = ["COUNT_HEADERS", "LABELS", "METHOD_LABELS", "category_label", "category_order", "in_sentence", "label", "method_label", "number_word", "outcome_label", "split_merged", "variable_label"]

LABELS: dict[str, dict[str, str]] = {
    # title block and colofon (metadata, not prose)
    "title": {"nl": "Loopbaangerichte opleidingen met Vlaamse opleidingsincentives", "en": "Career-oriented training with Flemish training incentives"},
    "subtitle": {
        "nl": "Evaluatie van opleidingen naar aanleiding van een persoonlijk ontwikkelingsplan (POP)",
        "en": "Evaluation of training following a personal development plan (POP)",
    },
    "publisher": {"nl": "Departement Werk en Sociale Economie", "en": "Department of Work and Social Economy"},
    "toc": {"nl": "Inhoud", "en": "Contents"},
    "tbl": {"nl": "Tabel", "en": "Table"},
    "fig": {"nl": "Figuur", "en": "Figure"},
    # column headers
    "col_incentive": {"nl": "Opleidingsincentive", "en": "Training incentive"},
    "col_unit": {"nl": "Eenheid", "en": "Unit"},
    "col_n_approved": {"nl": "Goedgekeurde aanvragen", "en": "Approved applications"},
    "col_n_pop": {"nl": "Waarvan na een POP", "en": "Of which after a POP"},
    "col_pct_pop": {"nl": "Aandeel na een POP", "en": "Share after a POP"},
    "col_group_pop_users": {"nl": "POP-gebruikers (personen)", "en": "POP users (persons)"},
    "col_group_all_users": {"nl": "Alle gebruikers (personen)", "en": "All users (persons)"},
    "col_characteristic": {"nl": "Kenmerk", "en": "Characteristic"},
    "col_n": {"nl": "Aantal", "en": "Number"},
    "col_pct": {"nl": "%", "en": "%"},
    "col_domain": {"nl": "Opleidingsdomein", "en": "Training domain"},
    "col_step": {"nl": "Stap", "en": "Step"},
    "col_pct_invited": {"nl": "% van de uitgenodigden", "en": "% of those invited"},
    "col_population": {"nl": "Populatie", "en": "Population"},
    "col_respondents": {"nl": "Respondenten", "en": "Respondents"},
    "col_pct_population": {"nl": "% populatie", "en": "% population"},
    "col_pct_unweighted": {"nl": "% respondenten", "en": "% respondents"},
    "col_pct_weighted": {"nl": "% gewogen", "en": "% weighted"},
    "col_statistic": {"nl": "Maatstaf", "en": "Statistic"},
    "col_value": {"nl": "Waarde", "en": "Value"},
    "col_smd_population": {"nl": "SMD populatie", "en": "SMD population"},
    "col_smd_before": {"nl": "SMD vóór matching", "en": "SMD before matching"},
    "col_smd_after": {"nl": "SMD na matching", "en": "SMD after matching"},
    "col_vr_after": {"nl": "Variantieverhouding na matching", "en": "Variance ratio after matching"},
    "col_outcome": {"nl": "Uitkomst", "en": "Outcome"},
    "col_method": {"nl": "Methode", "en": "Method"},
    "col_estimate_pp": {"nl": "Verschil (procentpunt)", "en": "Difference (points)"},
    "col_estimate_pt": {"nl": "Verschil (punten)", "en": "Difference (points)"},
    "col_ci": {"nl": "95\u00a0%-interval", "en": "95% interval"},
    "col_p_holm": {"nl": "p (Holm)", "en": "p (Holm)"},
    "col_se": {"nl": "Standaardfout", "en": "Standard error"},
    "col_n_treated": {"nl": "Aantal POP", "en": "Number POP"},
    "col_n_control": {"nl": "Aantal geen POP", "en": "Number no POP"},
    "col_category": {"nl": "Antwoord", "en": "Answer"},
    "col_shift": {"nl": "Verschuiving (procentpunt)", "en": "Shift (percentage points)"},
    "col_e_value": {"nl": "E-waarde", "en": "E-value"},
    "col_e_value_ci": {"nl": "E-waarde van de intervalgrens", "en": "E-value of the interval limit"},
    "col_variable": {"nl": "Kenmerk", "en": "Characteristic"},
    "col_ov_category": {"nl": "Categorie", "en": "Category"},
    "col_ov_pop": {"nl": "Met POP", "en": "With a POP"},
    "col_ov_nopop": {"nl": "Zonder POP", "en": "Without a POP"},
    "col_status": {"nl": "Overlap", "en": "Overlap"},
    "overlap_sparse": {"nl": "te weinig vergelijkbare gebruikers", "en": "too few comparable users"},
    "overlap_empty": {"nl": "geen vergelijkbare gebruikers", "en": "no comparable users"},
    "col_risk_ratio": {"nl": "Risicoverhouding (score 4 of 5)", "en": "Risk ratio (score 4 or 5)"},
    "col_verdict": {"nl": "Oordeel", "en": "Verdict"},
    "col_main": {"nl": "Hoofdanalyse", "en": "Main analysis"},
    "col_range": {"nl": "Andere methoden", "en": "Other methods"},
    "col_file": {"nl": "Bestand", "en": "File"},
    "col_reason": {"nl": "Reden", "en": "Reason"},
    "col_item": {"nl": "Onderdeel", "en": "Item"},
    "col_setting": {"nl": "Instelling", "en": "Setting"},
    # groups and units
    "pop": {"nl": "POP", "en": "POP"},
    "no_pop": {"nl": "Geen POP", "en": "No POP"},
    "all_users": {"nl": "Alle gebruikers", "en": "All users"},
    "inside": {"nl": "In de opleidingsdatabank", "en": "In the training database"},
    "outside": {"nl": "Buiten de opleidingsdatabank", "en": "Outside the training database"},
    "unit_applications": {"nl": "aanvragen", "en": "applications"},
    "unit_persons": {"nl": "personen", "en": "persons"},
    "main_marker": {"nl": "hoofdanalyse", "en": "main analysis"},
    "not_estimable": {"nl": "niet schatbaar", "en": "not estimable"},
    # why a secondary method could not be estimated: one per code of analysis.pipeline.NOT_ESTIMABLE_CODES
    "ne_too_few_categories": {"nl": "De uitkomst heeft te weinig verschillende antwoorden voor deze methode", "en": "The outcome has too few distinct answers for this method"},
    "ne_separation": {"nl": "Een kenmerk voorspelt de uitkomst of het POP volledig (volledige scheiding)", "en": "A characteristic predicts the outcome or the POP perfectly (complete separation)"},
    "ne_singular": {"nl": "De kenmerken in het model zijn lineair afhankelijk (singuliere matrix)", "en": "The characteristics in the model are linearly dependent (singular matrix)"},
    "ne_no_convergence": {"nl": "Het schattingsalgoritme vond geen oplossing (geen convergentie)", "en": "The estimation algorithm found no solution (no convergence)"},
    "ne_too_few_observations": {"nl": "Te weinig waarnemingen in een van de groepen", "en": "Too few observations in one of the groups"},
    "ne_other": {"nl": "Een andere fout bij het schatten", "en": "Another error during estimation"},
    "se_replicate": {"nl": "replicaties", "en": "replicates"},
    "se_model": {"nl": "robuust", "en": "robust"},
    "with_replacement": {"nl": "met teruglegging", "en": "with replacement"},
    "without_replacement": {"nl": "zonder teruglegging", "en": "without replacement"},
    "to": {"nl": "tot", "en": "to"},
    "yes": {"nl": "ja", "en": "yes"},
    "no": {"nl": "nee", "en": "no"},
    "not_given": {"nl": "niet opgegeven", "en": "not given"},
    # one difference per outcome, listed in a sentence
    "pp_for_outcome": {"nl": "{value} procentpunt voor {outcome}", "en": "{value} percentage points for {outcome}"},
    "pt_for_outcome": {"nl": "{value} punt voor {outcome}", "en": "{value} points for {outcome}"},
    # verdicts per outcome
    "verdict_consistent": {"nl": "hoger met POP, in alle methoden", "en": "higher with a POP, in all methods"},
    "verdict_main_only": {"nl": "hoger met POP volgens de hoofdanalyse, niet in alle methoden", "en": "higher with a POP in the main analysis, not in all methods"},
    "verdict_inconclusive": {"nl": "onbeslist: de methoden spreken elkaar tegen", "en": "inconclusive: the methods disagree"},
    "verdict_none": {"nl": "geen aantoonbaar verschil", "en": "no demonstrable difference"},
    "verdict_lower": {"nl": "lager met POP", "en": "lower with a POP"},
    # figures
    "before": {"nl": "Vóór matching", "en": "Before matching"},
    "after": {"nl": "Na matching", "en": "After matching"},
    "axis_smd": {"nl": "Absolute gestandaardiseerde verschillen (SMD)", "en": "Absolute standardised mean difference (SMD)"},
    "axis_pp": {"nl": "Verschil POP − geen POP (procentpunt)", "en": "Difference POP − no POP (percentage points)"},
    "axis_pt": {"nl": "Verschil POP − geen POP (punten op de vijfpuntenschaal)", "en": "Difference POP − no POP (points on the five-point scale)"},
    "axis_pct": {"nl": "Aandeel (%)", "en": "Share (%)"},
    "axis_persons": {"nl": "Aantal personen", "en": "Number of persons"},
    "suppressed_fig": {"nl": "x = onderdrukt (geheimhouding)", "en": "x = suppressed (confidentiality)"},
    "suppressed_in_prose": {"nl": "te weinig personen om te tonen", "en": "too few people to show"},
    # response flow (from the export's rows to the analysed respondents)
    "step_raw_rows": {"nl": "Rijen in de export van de bevraging", "en": "Rows in the survey export"},
    "step_duplicates_dropped": {"nl": "− dubbele antwoorden van dezelfde deelnemer", "en": "− duplicate responses of the same participant"},
    "step_respondents": {"nl": "Antwoorden (na verwijderen van dubbels)", "en": "Responses (duplicates removed)"},
    "step_incomplete": {"nl": "− onvolledig ingevuld", "en": "− incomplete"},
    "step_no_participant": {"nl": "− volledig, maar zonder gekende deelnemer", "en": "− complete, but without a known participant"},
    "step_not_in_population": {"nl": "− deelnemer niet gekoppeld aan de populatie", "en": "− participant not linked to the population"},
    "step_invited": {"nl": "Uitgenodigd", "en": "Invited"},
    "step_started": {"nl": "Gestart", "en": "Started"},
    "step_completed": {"nl": "Volledig ingevuld", "en": "Completed"},
    "step_linked": {"nl": "Gekoppeld aan de administratieve gegevens", "en": "Linked to the administrative records"},
    "step_analysed": {"nl": "Geanalyseerd", "en": "Analysed"},
    "step_dont_know": {"nl": "− ‘weet niet’ of geen antwoord: {outcome}", "en": "− ‘don't know’ or no answer: {outcome}"},
    # weight statistics
    "stat_n": {"nl": "Aantal respondenten", "en": "Number of respondents"},
    "stat_min": {"nl": "Kleinste gewicht", "en": "Smallest weight"},
    "stat_p05": {"nl": "5e percentiel", "en": "5th percentile"},
    "stat_median": {"nl": "Mediaan", "en": "Median"},
    "stat_p95": {"nl": "95e percentiel", "en": "95th percentile"},
    "stat_max": {"nl": "Grootste gewicht", "en": "Largest weight"},
    "stat_ratio_max_min": {"nl": "Verhouding grootste/kleinste", "en": "Ratio largest/smallest"},
    "stat_kish_deff": {"nl": "Designeffect (Kish)", "en": "Design effect (Kish)"},
    "stat_n_effective": {"nl": "Effectieve steekproefgrootte", "en": "Effective sample size"},
    "stat_iterations": {"nl": "Iteraties", "en": "Iterations"},
    "stat_converged": {"nl": "Geconvergeerd", "en": "Converged"},
    "stat_collapsed_cells": {"nl": "Samengevoegde cellen (te weinig respondenten)", "en": "Merged cells (too few respondents)"},
    # provenance
    "prov_run": {"nl": "Tijdstip van de analyse", "en": "Time of the analysis"},
    "prov_commit": {"nl": "Versie van de code (commit)", "en": "Code version (commit)"},
    "prov_seed": {"nl": "Startwaarde toevalsgenerator (seed)", "en": "Random seed"},
    "prov_version": {"nl": "Versie van de analysesoftware", "en": "Analysis software version"},
    "prov_design": {"nl": "Vergrendeld design (SHA-256)", "en": "Locked design (SHA-256)"},
    # weighting methods (config codes)
    "wm_rake": {"nl": "raking (iteratieve proportionele aanpassing)", "en": "raking (iterative proportional fitting)"},
    "wm_poststratify": {"nl": "poststratificatie", "en": "post-stratification"},
    "wm_linear": {"nl": "lineaire kalibratie", "en": "linear calibration"},
    "wm_logit": {"nl": "logitkalibratie", "en": "logit calibration"},
    "wm_none": {"nl": "geen weging", "en": "no weighting"},
    # variables without a data-model column
    "var_age_band": {"nl": "Leeftijd", "en": "Age"},
    "var_pop": {"nl": "POP", "en": "POP"},
    "cat_lbc": {"nl": "Loopbaancheques", "en": "Career-guidance vouchers"},
}

#: Column headers that hold counts of units; the disclosure test checks every cell under them.
COUNT_HEADERS: dict[str, tuple[str, ...]] = {
    lang: tuple(LABELS[k][lang] for k in ("col_n_approved", "col_n_pop", "col_n", "col_population", "col_respondents", "col_n_treated", "col_n_control")) for lang in ("nl", "en")
}

METHOD_LABELS: dict[str, dict[str, str]] = {
    "matching": {"nl": "Matching op de propensityscore", "en": "Propensity-score matching"},
    "regression": {"nl": "Regressie", "en": "Regression"},
    "ipw": {"nl": "Inverse-propensityweging", "en": "Inverse propensity weighting"},
    "aipw": {"nl": "Dubbel robuust (AIPW)", "en": "Doubly robust (AIPW)"},
    "ologit": {"nl": "Geordend logitmodel", "en": "Ordered logit"},
    "absorbed": {"nl": "Regressie binnen opleidingsdomein", "en": "Regression within training domain"},
    "controlled_direct": {"nl": "Gecontroleerd direct effect", "en": "Controlled direct effect"},
    "g_computation": {"nl": "G-computatie", "en": "G-computation"},
    "weighted": {"nl": "Gewogen, zonder correctie", "en": "Weighted, unadjusted"},
    "naive": {"nl": "Ruw verschil (ongewogen)", "en": "Raw difference (unweighted)"},
}


def label(key: str, lang: str, **fields: object) -> str:
    """The label ``key`` in ``lang``, with ``fields`` filled in.

    Raises
    ------
    ConfigError
        For an unknown key or language.
    """
    try:
        text = LABELS[key][lang]
    except KeyError as exc:
        raise ConfigError("No report label", param=key, expected="a key of analysis.report.labels.LABELS in nl and en", found=f"{key!r} ({lang})") from exc
    return text.format(**fields) if fields else text


_NUMBER_WORDS = {
    "nl": ("nul", "één", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen", "tien", "elf", "twaalf"),
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"),
}


def number_word(n: int, lang: str) -> str:
    """A small count as a word (``4`` -> ``vier`` / ``four``); from 13 on the digits."""
    words = _NUMBER_WORDS["nl" if lang == "nl" else "en"]
    return words[n] if 0 <= n < len(words) else str(n)


def method_label(method: str, lang: str) -> str:
    """The label of an estimation method (the code itself when unknown)."""
    return METHOD_LABELS.get(method, {}).get(lang, method)


def outcome_label(name: str, lang: str, labels: Mapping[str, Any] | None = None) -> str:
    """The label of an outcome: from ``labels`` (the bundle's) when given, else the questionnaire's."""
    if labels and name in labels:
        given = labels[name]
        if isinstance(given, Mapping):
            if lang in given:
                return str(given[lang])
        elif isinstance(given, str):
            return given
    from survey.questionnaire import OUTCOMES

    for o in OUTCOMES:
        if o.name == name:
            return o.nl if lang == "nl" else o.en
    return name


_VOCAB = {
    "sex": "SEX",
    "educ": "EDUCATION",
    "age_band": "AGE_BANDS",
    "sector": "SECTORS",
    "company_size": "COMPANY_SIZE",
    "province": "PROVINCES",
    "statute": "STATUTES",
    "incentive": "INCENTIVES",
    "domain": "TRAINING_DOMAINS",
    "training_domain": "TRAINING_DOMAINS",
    "nace": "NACE_SECTIONS",
}


def variable_label(variable: str, lang: str) -> str:
    """The label of a characteristic, from the data model (DWSE extract columns)."""
    from survey import datamodel

    if " x " in variable:
        return " × ".join(variable_label(v, lang) for v in variable.split(" x "))
    if f"var_{variable}" in LABELS:
        return label(f"var_{variable}", lang)
    try:
        col = datamodel.DWSE_APPLICATIONS.column(variable)
    except KeyError:
        return variable
    return col.nl if lang == "nl" else col.en


def _codes(variable: str) -> list[str]:
    from survey import datamodel

    vocab = _VOCAB.get(variable)
    return [c.code for c in getattr(datamodel, vocab)] if vocab and hasattr(datamodel, vocab) else []


def category_order(variable: str, code: object) -> int:
    """The position of ``code`` in the codebook of ``variable`` (unknown codes last)."""
    codes = _codes(variable)
    return codes.index(str(code)) if str(code) in codes else len(codes)


def split_merged(code: str) -> list[str]:
    """Cells merged by the sparse-cell rule are joined with ``+``; a code may itself end in ``+``
    (``55+``), so an empty piece after a split gives its ``+`` back to the piece before it."""
    parts: list[str] = []
    for piece in code.split("+"):
        if piece == "" and parts:
            parts[-1] += "+"
        else:
            parts.append(piece)
    return [p.strip() for p in parts if p.strip()]


def category_label(variable: str, code: object, lang: str) -> str:
    """The label of a category code of ``variable`` from the codebook (the code when unknown).

    Joint margins (``variable`` ``"a x b"``, code ``"c1 x c2"``) are labelled part by part, and cells
    merged by the sparse-cell rule (``"c1 x c2+c3 x c4"``) as ``"... + ..."``.  A ``+`` that belongs
    to a code (``55+``, ``250+``) is kept.
    """
    from survey import datamodel

    code_s = str(code)
    if " x " in variable:
        names = variable.split(" x ")
        pieces = []
        for cell in split_merged(code_s):
            parts = [p.strip() for p in cell.split(" x ")]
            pieces.append(" × ".join(category_label(v, c, lang) for v, c in zip(names, parts, strict=True)) if len(parts) == len(names) else cell)
        return " + ".join(pieces)
    if variable == "incentive" and code_s == "LBC":
        return label("cat_lbc", lang)
    if variable == "pop":
        return label("pop", lang) if code_s.lower() in ("true", "1", "pop", "yes", "1.0") else label("no_pop", lang)
    vocab = _VOCAB.get(variable)
    if vocab is None or not hasattr(datamodel, vocab):
        return code_s
    parts = split_merged(code_s)
    out = []
    for p in parts:
        try:
            out.append(datamodel.label(getattr(datamodel, vocab), p, lang))
        except KeyError:
            out.append(p)
    return " + ".join(out)


def in_sentence(text: str) -> str:
    """A label lower-cased for use inside a sentence, keeping acronyms (POP, ICT, AIPW) and 'Vlaams'."""
    words = text.split(" ")
    return " ".join(w if (sum(ch.isupper() for ch in w) > 1 or (i > 0 and w[:1].isupper() and w.lower() in ("vlaams", "flemish"))) else (w[:1].lower() + w[1:]) for i, w in enumerate(words))
