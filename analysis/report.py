"""The report's words, in Dutch and English: headings, prose, captions, column headers and labels.

Every string the evaluation report prints comes from :data:`TEXT` (prose) or from the codebook
(:mod:`survey.datamodel`, :mod:`survey.questionnaire`) through :func:`category_label` and
:func:`variable_label`, so the Dutch and English reports come from one source.  Strings with
``{name}`` fields are filled in by :mod:`analysis.reporting` with numbers formatted by
:mod:`analysis.formatting`.
"""

from __future__ import annotations

from survey.errors import ConfigError

__all__ = ["COUNT_HEADERS", "METHOD_LABELS", "SECTION_IDS", "TEXT", "category_label", "method_label", "outcome_label", "t", "variable_label"]

#: Section id -> heading key; the report has these sections, in this order.
SECTION_IDS = ("findings", "population", "survey", "comparison", "sensitivity", "methods", "provenance")

TEXT: dict[str, dict[str, str]] = {
    # ---------------------------------------------------------------- title block
    "title": {
        "nl": "Loopbaangerichte opleidingen met Vlaamse opleidingsincentives",
        "en": "Career-oriented training with Flemish training incentives",
    },
    "subtitle": {
        "nl": "Evaluatie van opleidingen naar aanleiding van een persoonlijk ontwikkelingsplan (POP)",
        "en": "Evaluation of training following a personal development plan (POP)",
    },
    "publisher": {"nl": "Departement Werk en Sociale Economie", "en": "Department of Work and Social Economy"},
    "series": {"nl": "Evaluatierapport", "en": "Evaluation report"},
    "date_label": {"nl": "Datum van de analyse", "en": "Date of the analysis"},
    "demo_notice": {
        "nl": "Dit rapport is gemaakt met synthetische demonstratiegegevens; de cijfers beschrijven geen echte personen.",
        "en": "This report was made with synthetic demonstration data; the figures describe no real persons.",
    },
    "sdc_notice": {
        "nl": "Statistische geheimhouding: aantallen kleiner dan {threshold} en de cellen waaruit ze afgeleid kunnen worden, zijn vervangen door ‘{x}’; percentages op basis van die aantallen ook.",
        "en": "Statistical confidentiality: counts below {threshold}, and the cells from which they could be derived, are replaced by ‘{x}’; so are percentages based on them.",
    },
    # ---------------------------------------------------------------- section headings
    "h_findings": {"nl": "Kernbevindingen", "en": "Key findings"},
    "h_population": {"nl": "Wie volgt een loopbaangerichte opleiding na een POP?", "en": "Who follows career-oriented training after a POP?"},
    "h_pop_share": {"nl": "Gebruik per opleidingsincentive", "en": "Use per training incentive"},
    "h_profile": {"nl": "Profiel van de gebruikers", "en": "Profile of the users"},
    "h_domains": {"nl": "Opleidingsdomeinen", "en": "Training domains"},
    "h_survey": {"nl": "De bevraging", "en": "The survey"},
    "h_flow": {"nl": "Respons", "en": "Response"},
    "h_margins": {"nl": "Gewogen respondenten tegenover de populatie", "en": "Weighted respondents against the population"},
    "h_weights": {"nl": "Gewichten", "en": "Weights"},
    "h_comparison": {"nl": "POP tegenover geen POP", "en": "POP versus no POP"},
    "h_balance": {"nl": "Vergelijkbaarheid van de groepen", "en": "Comparability of the groups"},
    "h_effects": {"nl": "Effecten op de vier uitkomsten", "en": "Effects on the four outcomes"},
    "h_shifts": {"nl": "Verschuivingen per antwoordcategorie", "en": "Shifts per answer category"},
    "h_sensitivity": {"nl": "Gevoeligheidsanalyse", "en": "Sensitivity analysis"},
    "h_methods": {"nl": "Methodologische bijlage", "en": "Methods appendix"},
    "h_provenance": {"nl": "Herkomst van de resultaten", "en": "Provenance of the results"},
    # ---------------------------------------------------------------- key findings
    "kf_intro": {
        "nl": "Werknemers kunnen na loopbaanbegeleiding een loopbaangerichte opleiding volgen met opleidingscheques, Vlaams opleidingsverlof of de aanmoedigingspremie opleidingskrediet, als de opleiding in hun persoonlijk ontwikkelingsplan (POP) staat. Dit rapport beschrijft wie dat doet en vergelijkt de ervaren effecten van de opleiding tussen werknemers met en zonder POP.",
        "en": "After career guidance, employees can follow career-oriented training with training vouchers, Flemish training leave or the incentive premium for training credit when the training is part of their personal development plan (POP). This report describes who does so and compares the perceived effects of the training between employees with and without a POP.",
    },
    "kf_share": {
        "nl": "{pct} van de goedgekeurde aanvragen voor {incentive} is een loopbaangerichte opleiding na een POP ({n} van {total}).",
        "en": "{pct} of approved applications for {incentive} concern career-oriented training after a POP ({n} of {total}).",
    },
    "kf_lbc": {
        "nl": "{pct} van de loopbaanchequegebruikers volgt daarna een loopbaangerichte opleiding met een opleidingsincentive.",
        "en": "{pct} of career-guidance voucher users go on to career-oriented training with a training incentive.",
    },
    "kf_profile": {
        "nl": "{pct_pop} van de POP-gebruikers is hooggeschoold, tegenover {pct_all} van alle gebruikers van een opleidingsincentive; {women_pop} is een vrouw (alle gebruikers: {women_all}).",
        "en": "{pct_pop} of POP users are high-educated, against {pct_all} of all training-incentive users; {women_pop} are women (all users: {women_all}).",
    },
    "kf_survey": {
        "nl": "Van de {invited} uitgenodigde gebruikers van opleidingscheques konden {analysed} antwoorden geanalyseerd worden ({rate}).",
        "en": "Of the {invited} training-voucher users invited, {analysed} responses could be analysed ({rate}).",
    },
    "kf_effects_sig": {
        "nl": "Volgens de hoofdanalyse ({method}) scoren werknemers met een POP gemiddeld hoger op: {outcomes} (significant na Holm-correctie, 5 %).",
        "en": "According to the main analysis ({method}), employees with a POP score higher on average on: {outcomes} (significant after Holm correction, 5%).",
    },
    "kf_effects_none": {
        "nl": "Volgens de hoofdanalyse ({method}) is geen enkel verschil tussen werknemers met en zonder POP significant na Holm-correctie (5 %); de geschatte verschillen liggen tussen {lo} en {hi} punten op de vijfpuntenschaal.",
        "en": "According to the main analysis ({method}), no difference between employees with and without a POP is significant after Holm correction (5%); the estimated differences range from {lo} to {hi} points on the five-point scale.",
    },
    "kf_sensitivity": {
        "nl": "De grootste E-waarde is {evalue} ({outcome}): een niet-gemeten verstorende factor zou zo sterk met POP-gebruik en met de uitkomst moeten samenhangen om het verschil volledig te verklaren.",
        "en": "The largest E-value is {evalue} ({outcome}): an unmeasured confounder would need to be associated this strongly with POP use and with the outcome to explain the difference away.",
    },
    # ---------------------------------------------------------------- population
    "pop_intro": {
        "nl": "Het eerste luik brengt de populatie in kaart met de administratieve gegevens van het Departement WSE (aanvragen voor opleidingsincentives) en VDAB (loopbaanbegeleiding).",
        "en": "The first part describes the population with the administrative data of the Department of Work and Social Economy (applications for training incentives) and VDAB (career guidance).",
    },
    "profile_intro": {
        "nl": "Tabel {table} vergelijkt de werknemers die een opleidingsincentive gebruiken na een POP met alle gebruikers van een opleidingsincentive.",
        "en": "Table {table} compares the employees who use a training incentive after a POP with all users of a training incentive.",
    },
    "domains_intro": {
        "nl": "Tabel {table} toont de opleidingsdomeinen van de goedgekeurde POP-aanvragen, binnen en buiten de opleidingsdatabank. {pct} van die aanvragen betreft een opleiding buiten de opleidingsdatabank.",
        "en": "Table {table} shows the training domains of approved POP applications, inside and outside the training database. {pct} of these applications concern a training outside the database.",
    },
    # ---------------------------------------------------------------- survey
    "survey_intro": {
        "nl": "Het tweede luik is een online bevraging van gebruikers van opleidingscheques, gekoppeld aan hun administratieve gegevens. Tabel {table} toont hoeveel personen elke stap bereikten.",
        "en": "The second part is an online survey of training-voucher users, linked to their administrative records. Table {table} shows how many persons reached each step.",
    },
    "margins_intro": {
        "nl": "De respons verschilt tussen groepen. Gewichten herstellen de verdeling van de populatie op de kenmerken in tabel {table}.",
        "en": "Response differs between groups. Weights restore the population distribution on the characteristics in table {table}.",
    },
    "weights_intro": {
        "nl": "Tabel {table} vat de gewichten samen. Het design-effect van Kish ({deff}) geeft aan hoeveel de variantie toeneemt door ongelijke gewichten; de effectieve steekproefgrootte is {neff}.",
        "en": "Table {table} summarises the weights. Kish's design effect ({deff}) shows how much unequal weights inflate the variance; the effective sample size is {neff}.",
    },
    # ---------------------------------------------------------------- comparison
    "balance_intro": {
        "nl": "Werknemers met en zonder POP verschillen in profiel. Tabel {table} en figuur {figure} tonen de gestandaardiseerde verschillen (SMD) voor en na matching; een absolute SMD onder 0,1 geldt als goed vergelijkbaar.",
        "en": "Employees with and without a POP differ in profile. Table {table} and figure {figure} show the standardised mean differences (SMD) before and after matching; an absolute SMD below 0.1 counts as well balanced.",
    },
    "smd_note": {
        "nl": "SMD: verschil in gemiddelden gedeeld door de standaardafwijking in de POP-groep. SMD populatie: de gewogen gematchte controlegroep tegenover alle POP-gebruikers in de administratieve populatie.",
        "en": "SMD: difference in means divided by the standard deviation in the POP group. SMD population: the weighted matched control group against all POP users in the administrative population.",
    },
    "effects_intro": {
        "nl": "De vier uitkomsten zijn stellingen op een vijfpuntenschaal (1 = helemaal niet akkoord, 5 = helemaal akkoord). Tabel {table} geeft het verschil tussen werknemers met en zonder POP per methode, met een 95 %-betrouwbaarheidsinterval en p-waarden gecorrigeerd voor vier toetsen (Holm; Benjamini-Hochberg). Figuur {figure} toont dezelfde schattingen.",
        "en": "The four outcomes are statements on a five-point scale (1 = strongly disagree, 5 = strongly agree). Table {table} gives the difference between employees with and without a POP per method, with a 95% confidence interval and p-values adjusted for four tests (Holm; Benjamini-Hochberg). Figure {figure} shows the same estimates.",
    },
    "effects_top2": {
        "nl": "Tabel {table} geeft hetzelfde voor het aandeel dat (helemaal) akkoord gaat, in procentpunten.",
        "en": "Table {table} gives the same for the share who (strongly) agree, in percentage points.",
    },
    "shifts_intro": {
        "nl": "Tabel {table} toont hoe het aandeel per antwoordcategorie verschuift bij werknemers met een POP, in procentpunten.",
        "en": "Table {table} shows how the share per answer category shifts for employees with a POP, in percentage points.",
    },
    # ---------------------------------------------------------------- sensitivity
    "sens_intro": {
        "nl": "Een vergelijking op basis van waargenomen kenmerken kan vertekend zijn door niet-gemeten verschillen. De E-waarde is de sterkte (als risicoratio) waarmee een niet-gemeten factor met zowel POP-gebruik als de uitkomst zou moeten samenhangen om het geschatte verschil (of de grens van het betrouwbaarheidsinterval) weg te verklaren. De E-waarde wordt berekend op de risicoratio van een score 4 of 5 (top-2-box); Rosenbaums Γ wordt niet gerapporteerd omdat die matching in paren zonder teruglegging en zonder surveygewichten veronderstelt.",
        "en": "A comparison based on observed characteristics can be biased by unmeasured differences. The E-value is the strength (as a risk ratio) with which an unmeasured factor would have to be associated with both POP use and the outcome to explain away the estimate (or the confidence limit). The E-value is computed on the risk ratio of a score of 4 or 5 (top-2-box); Rosenbaum's Γ is not reported because it assumes 1:1 pair matching without replacement and without survey weights.",
    },
    # ---------------------------------------------------------------- methods
    "m_estimands_h": {"nl": "Geschatte grootheden", "en": "Estimands"},
    "m_estimands": {
        "nl": "Het effect van een POP wordt geschat als het gemiddelde verschil bij de werknemers met een POP (ATT: average treatment effect on the treated). Bij de gewogen analyse geldt de schatting voor de populatie van gebruikers van opleidingscheques (PATT). De uitkomsten worden zowel op de vijfpuntenschaal als als aandeel (helemaal) akkoord geanalyseerd; ‘weet niet’ telt als ontbrekend.",
        "en": "The effect of a POP is estimated as the mean difference among the employees with a POP (ATT: average treatment effect on the treated). In the weighted analysis the estimate refers to the population of training-voucher users (PATT). Outcomes are analysed both on the five-point scale and as the share who (strongly) agree; ‘don't know’ counts as missing.",
    },
    "m_weighting_h": {"nl": "Weging", "en": "Weighting"},
    "m_weighting": {
        "nl": "De respondenten worden gewogen naar de populatie (methode: {method}) op de verdelingen van {margins}. De populatie is bekend uit de administratieve gegevens.",
        "en": "Respondents are weighted to the population (method: {method}) on the distributions of {margins}. The population is known from the administrative data.",
    },
    "m_matching_h": {"nl": "Matching", "en": "Matching"},
    "m_matching": {
        "nl": "Werknemers met een POP worden vergeleken met werknemers zonder POP die op de kenmerken {covariates} vergelijkbaar zijn (methode: {method}).",
        "en": "Employees with a POP are compared with employees without a POP who are similar on {covariates} (method: {method}).",
    },
    "m_variance_h": {"nl": "Variantie en toetsen", "en": "Variance and tests"},
    "m_variance": {
        "nl": "Voor de hoofdmethode (matching) komen de standaardfouten uit {replicates} end-to-end replicaties: een Rao-Wu-bootstrap van de respondenten binnen de steekproeflagen (met en zonder POP), waarbij elke replicatie opnieuw naar de populatie weegt, de propensityscore opnieuw schat en opnieuw matcht. Zo telt de onzekerheid van weging en matching mee. Voor de andere methoden zijn het robuuste (sandwich-)standaardfouten met de gewichten. Betrouwbaarheidsintervallen zijn 95 %-intervallen. Omdat vier uitkomsten getoetst worden, worden de p-waarden per methode gecorrigeerd met de methode van Holm (familywise error rate) en van Benjamini-Hochberg (false discovery rate).",
        "en": "For the main method (matching) the standard errors come from {replicates} end-to-end replicates: a Rao-Wu bootstrap of the respondents within the sampling strata (with and without a POP), in which every replicate is re-weighted to the population, the propensity score re-estimated and the matching redone, so that the uncertainty of weighting and matching counts. For the other methods they are robust (sandwich) standard errors with the weights. Confidence intervals are 95% intervals. Because four outcomes are tested, p-values are adjusted per method with Holm's method (familywise error rate) and Benjamini-Hochberg (false discovery rate).",
    },
    "m_sdc_h": {"nl": "Statistische geheimhouding", "en": "Statistical disclosure control"},
    "m_sdc": {
        "nl": "Cellen met minder dan {threshold} eenheden worden onderdrukt (primaire onderdrukking), net als zoveel andere cellen als nodig om ze niet uit totalen te kunnen afleiden (secundaire onderdrukking). Percentages op basis van onderdrukte aantallen worden ook onderdrukt.",
        "en": "Cells with fewer than {threshold} units are suppressed (primary suppression), together with as many other cells as needed so that they cannot be derived from totals (secondary suppression). Percentages based on suppressed counts are suppressed too.",
    },
    # ---------------------------------------------------------------- provenance
    "prov_intro": {
        "nl": "Alle cijfers in dit rapport komen uit één resultatenbundel. Tabel {table} en {table2} identificeren de invoer en de software, zodat de analyse herhaald en nagekeken kan worden.",
        "en": "Every figure in this report comes from one results bundle. Tables {table} and {table2} identify the inputs and the software, so that the analysis can be repeated and checked.",
    },
    "prov_run": {"nl": "Tijdstip van de analyse", "en": "Time of the analysis"},
    "prov_commit": {"nl": "Versie van de code (commit)", "en": "Code version (commit)"},
    "prov_seed": {"nl": "Seed", "en": "Seed"},
    "prov_version": {"nl": "Versie van popeval", "en": "popeval version"},
    "prov_config": {"nl": "Configuratie", "en": "Configuration"},
    "prov_note": {"nl": "Opmerking", "en": "Note"},
    "not_given": {"nl": "niet opgegeven", "en": "not given"},
    "empty": {"nl": "De resultatenbundel bevat hiervoor geen resultaten.", "en": "The results bundle holds no results for this."},
    # ---------------------------------------------------------------- captions
    "cap_pop_share": {"nl": "Goedgekeurde aanvragen na een POP, per opleidingsincentive", "en": "Approved applications following a POP, per training incentive"},
    "cap_profile": {"nl": "Profiel van de POP-gebruikers en van alle gebruikers van een opleidingsincentive", "en": "Profile of POP users and of all training-incentive users"},
    "cap_profile_fig": {"nl": "Profiel van POP-gebruikers tegenover alle gebruikers (%)", "en": "Profile of POP users against all users (%)"},
    "cap_domains": {"nl": "Opleidingsdomeinen van goedgekeurde POP-aanvragen", "en": "Training domains of approved POP applications"},
    "cap_flow": {"nl": "Responsverloop van de bevraging", "en": "Survey response flow"},
    "cap_flow_fig": {"nl": "Responsverloop: aantal personen per stap", "en": "Response flow: number of persons per step"},
    "cap_margins": {"nl": "Respondenten tegenover de populatie, ongewogen en gewogen", "en": "Respondents against the population, unweighted and weighted"},
    "cap_weights": {"nl": "Diagnostiek van de gewichten", "en": "Weight diagnostics"},
    "cap_balance": {"nl": "Gestandaardiseerde verschillen tussen POP en geen POP", "en": "Standardised differences between POP and no POP"},
    "cap_love": {"nl": "Balans van de kenmerken voor en na matching (absolute SMD)", "en": "Covariate balance before and after matching (absolute SMD)"},
    "cap_effects": {"nl": "Verschil tussen POP en geen POP op de vijfpuntenschaal, per methode", "en": "Difference between POP and no POP on the five-point scale, per method"},
    "cap_effects_top2": {"nl": "Verschil in het aandeel (helemaal) akkoord, in procentpunten, per methode", "en": "Difference in the share who (strongly) agree, in percentage points, per method"},
    "cap_forest": {"nl": "Geschat verschil met 95 %-betrouwbaarheidsinterval (vijfpuntenschaal)", "en": "Estimated difference with 95% confidence interval (five-point scale)"},
    "cap_shifts": {"nl": "Verschuiving van het aandeel per antwoordcategorie bij POP (procentpunten)", "en": "Shift in the share per answer category with a POP (percentage points)"},
    "cap_sensitivity": {"nl": "E-waarden (risicoratio top-2-box)", "en": "E-values (top-2-box risk ratio)"},
    "cap_inputs": {"nl": "Invoerbestanden en hun SHA-256", "en": "Input files and their SHA-256"},
    "cap_run": {"nl": "Analyse, software en configuratie", "en": "Analysis, software and configuration"},
    "table": {"nl": "Tabel", "en": "Table"},
    "figure": {"nl": "Figuur", "en": "Figure"},
    "source": {"nl": "Bron", "en": "Source"},
    "src_dwse": {"nl": "Departement WSE (aanvragen opleidingsincentives), VDAB (loopbaanbegeleiding); bewerking popeval", "en": "Department of Work and Social Economy (training-incentive applications), VDAB (career guidance); popeval calculations"},
    "src_survey": {"nl": "Bevraging gebruikers opleidingscheques, gekoppeld aan gegevens van het Departement WSE; bewerking popeval", "en": "Survey of training-voucher users, linked to data of the Department of Work and Social Economy; popeval calculations"},
    "src_bundle": {"nl": "manifest van de resultatenbundel", "en": "results bundle manifest"},
    # ---------------------------------------------------------------- column headers
    "col_incentive": {"nl": "Opleidingsincentive", "en": "Training incentive"},
    "col_n_approved": {"nl": "Aantal goedgekeurd", "en": "Number approved"},
    "col_n_pop": {"nl": "Aantal na POP", "en": "Number after POP"},
    "col_pct_pop": {"nl": "Aandeel na POP", "en": "Share after POP"},
    "col_characteristic": {"nl": "Kenmerk", "en": "Characteristic"},
    "col_category": {"nl": "Categorie", "en": "Category"},
    "col_n_group_pop": {"nl": "Aantal POP", "en": "Number POP"},
    "col_pct_group_pop": {"nl": "% POP", "en": "% POP"},
    "col_n_group_all": {"nl": "Aantal alle", "en": "Number all"},
    "col_pct_group_all": {"nl": "% alle", "en": "% all"},
    "col_databank": {"nl": "Opleidingsdatabank", "en": "Training database"},
    "col_domain": {"nl": "Domein", "en": "Domain"},
    "col_n": {"nl": "Aantal", "en": "Number"},
    "col_pct": {"nl": "Aandeel", "en": "Share"},
    "col_step": {"nl": "Stap", "en": "Step"},
    "col_pct_invited": {"nl": "% van uitgenodigd", "en": "% of invited"},
    "col_population": {"nl": "Aantal in populatie", "en": "Number in population"},
    "col_n_respondents": {"nl": "Aantal respondenten", "en": "Number of respondents"},
    "col_pct_population": {"nl": "% populatie", "en": "% population"},
    "col_pct_unweighted": {"nl": "% ongewogen", "en": "% unweighted"},
    "col_pct_weighted": {"nl": "% gewogen", "en": "% weighted"},
    "col_statistic": {"nl": "Maatstaf", "en": "Statistic"},
    "col_value": {"nl": "Waarde", "en": "Value"},
    "col_variable": {"nl": "Kenmerk", "en": "Characteristic"},
    "col_smd_population": {"nl": "SMD populatie", "en": "SMD population"},
    "col_smd_before": {"nl": "SMD voor", "en": "SMD before"},
    "col_smd_after": {"nl": "SMD na", "en": "SMD after"},
    "col_vr_after": {"nl": "Variantieratio na", "en": "Variance ratio after"},
    "col_outcome": {"nl": "Uitkomst", "en": "Outcome"},
    "col_method": {"nl": "Methode", "en": "Method"},
    "col_estimate": {"nl": "Verschil", "en": "Difference"},
    "col_ci": {"nl": "95 %-BI", "en": "95% CI"},
    "col_p": {"nl": "p", "en": "p"},
    "col_p_holm": {"nl": "p (Holm)", "en": "p (Holm)"},
    "col_p_bh": {"nl": "p (BH)", "en": "p (BH)"},
    "col_n_treated": {"nl": "Aantal POP", "en": "Number POP"},
    "col_n_control": {"nl": "Aantal geen POP", "en": "Number no POP"},
    "col_e_value": {"nl": "E-waarde", "en": "E-value"},
    "col_e_value_ci": {"nl": "E-waarde (BI-grens)", "en": "E-value (CI limit)"},
    "col_risk_ratio": {"nl": "Risicoratio (top-2-box)", "en": "Risk ratio (top-2-box)"},
    "col_file": {"nl": "Bestand", "en": "File"},
    "col_item": {"nl": "Onderdeel", "en": "Item"},
    "yes": {"nl": "ja", "en": "yes"},
    "no": {"nl": "nee", "en": "no"},
    "inside": {"nl": "Binnen de databank", "en": "In the database"},
    "outside": {"nl": "Buiten de databank", "en": "Outside the database"},
    "pop": {"nl": "POP", "en": "POP"},
    "all_users": {"nl": "Alle gebruikers", "en": "All users"},
    "no_pop": {"nl": "Geen POP", "en": "No POP"},
    "before": {"nl": "Voor matching", "en": "Before matching"},
    "after": {"nl": "Na matching", "en": "After matching"},
    "axis_smd": {"nl": "Absolute SMD", "en": "Absolute SMD"},
    "axis_diff": {"nl": "Verschil POP − geen POP (punten op de vijfpuntenschaal)", "en": "Difference POP − no POP (points on the five-point scale)"},
    "axis_pct": {"nl": "Aandeel (%)", "en": "Share (%)"},
    "axis_persons": {"nl": "Aantal personen", "en": "Number of persons"},
    "suppressed_fig": {"nl": "{x} = onderdrukt (geheimhouding)", "en": "{x} = suppressed (confidentiality)"},
    # response-flow steps
    "step_invited": {"nl": "Uitgenodigd", "en": "Invited"},
    "step_started": {"nl": "Gestart", "en": "Started"},
    "step_completed": {"nl": "Volledig ingevuld", "en": "Completed"},
    "step_linked": {"nl": "Gekoppeld aan administratieve gegevens", "en": "Linked to administrative records"},
    "step_analysed": {"nl": "Geanalyseerd", "en": "Analysed"},
    # weight statistics
    "stat_n": {"nl": "Aantal respondenten", "en": "Number of respondents"},
    "stat_min": {"nl": "Kleinste gewicht", "en": "Smallest weight"},
    "stat_p05": {"nl": "5e percentiel", "en": "5th percentile"},
    "stat_median": {"nl": "Mediaan", "en": "Median"},
    "stat_p95": {"nl": "95e percentiel", "en": "95th percentile"},
    "stat_max": {"nl": "Grootste gewicht", "en": "Largest weight"},
    "stat_ratio_max_min": {"nl": "Verhouding grootste/kleinste", "en": "Ratio largest/smallest"},
    "stat_kish_deff": {"nl": "Design-effect (Kish)", "en": "Design effect (Kish)"},
    "stat_n_effective": {"nl": "Effectieve steekproefgrootte", "en": "Effective sample size"},
    "stat_iterations": {"nl": "Iteraties", "en": "Iterations"},
    "stat_converged": {"nl": "Geconvergeerd", "en": "Converged"},
    "stat_collapsed_cells": {"nl": "Samengevoegde cellen (te weinig respondenten)", "en": "Merged cells (too few respondents)"},
    # variables without a data-model column
    "var_age_band": {"nl": "Leeftijd", "en": "Age"},
    "var_pop": {"nl": "POP", "en": "POP"},
    "cat_lbc": {"nl": "Loopbaancheques (gebruikers)", "en": "Career-guidance vouchers (users)"},
}

#: Column headers that hold counts of units; the disclosure test checks every cell under them.
COUNT_HEADERS: dict[str, tuple[str, ...]] = {
    lang: tuple(
        TEXT[k][lang]
        for k in ("col_n_approved", "col_n_pop", "col_n_group_pop", "col_n_group_all", "col_n", "col_population", "col_n_respondents", "col_n_treated", "col_n_control")
    )
    for lang in ("nl", "en")
}

METHOD_LABELS: dict[str, dict[str, str]] = {
    "unadjusted": {"nl": "Ongecorrigeerd", "en": "Unadjusted"},
    "weighted": {"nl": "Gewogen", "en": "Weighted"},
    "matching": {"nl": "Matching", "en": "Matching"},
    "ipw": {"nl": "Inverse propensity-weging", "en": "Inverse propensity weighting"},
    "regression": {"nl": "Regressieaanpassing (g-computatie)", "en": "Regression adjustment (g-computation)"},
    "doubly_robust": {"nl": "Dubbel robuust", "en": "Doubly robust"},
    "ordered_logit": {"nl": "Geordend logitmodel", "en": "Ordered logit"},
    "fixed_effects": {"nl": "Gecontroleerd direct effect (opleidingsdomein vast)", "en": "Controlled direct effect (training domain held fixed)"},
}


def t(key: str, lang: str, **fields: object) -> str:
    """The text ``key`` in ``lang``, with ``fields`` filled in.

    Raises
    ------
    ConfigError
        For an unknown key or language.
    """
    try:
        text = TEXT[key][lang]
    except KeyError as exc:
        raise ConfigError("No report text", param=key, expected="a key of analysis.report.TEXT in nl and en", found=f"{key!r} ({lang})") from exc
    return text.format(**fields) if fields else text


def method_label(method: str, lang: str) -> str:
    """The label of an estimation method (the code itself when unknown)."""
    return METHOD_LABELS.get(method, {}).get(lang, method)


def outcome_label(name: str, lang: str) -> str:
    """The label of an outcome from the questionnaire."""
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
    """The label of a characteristic, from the data model (DWSE extract columns).

    A joint margin ``"a x b"`` is labelled part by part (``"A × B"``).
    """
    from survey import datamodel

    if " x " in variable:
        return " × ".join(variable_label(v, lang) for v in variable.split(" x "))

    if f"var_{variable}" in TEXT:
        return t(f"var_{variable}", lang)
    try:
        col = datamodel.DWSE_APPLICATIONS.column(variable)
    except KeyError:
        return variable
    return col.nl if lang == "nl" else col.en


def category_label(variable: str, code: object, lang: str) -> str:
    """The label of a category code of ``variable`` from the codebook (the code when unknown).

    Joint margins (``variable`` ``"a x b"``, code ``"c1 x c2"``) are labelled part by part, and cells
    merged by the sparse-cell rule (``"c1 x c2+c3 x c4"``) as ``"... + ..."``.
    """
    from survey import datamodel

    code_s = str(code)
    if " x " in variable:
        names = variable.split(" x ")
        pieces = []
        for cell in code_s.split("+"):
            parts = cell.split(" x ")
            pieces.append(" × ".join(category_label(v, c, lang) for v, c in zip(names, parts, strict=True)) if len(parts) == len(names) else cell)
        return " + ".join(pieces)
    if variable == "incentive" and code_s == "LBC":
        return t("cat_lbc", lang)
    if variable == "pop":
        return t("pop", lang) if code_s.lower() in ("true", "1", "pop", "yes") else t("no_pop", lang)
    vocab = _VOCAB.get(variable)
    if vocab is None:
        return code_s
    try:
        return datamodel.label(getattr(datamodel, vocab), code_s, lang)
    except KeyError:
        return code_s
