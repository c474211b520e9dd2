"""Reading personal development plans (POPs): codebook, sample, coding sheets, agreement, estimates.

The data flow (each step a ``popeval plans`` subcommand, see :mod:`analysis.plans.command`):

1. :mod:`~analysis.plans.frame` reads the POP texts (a folder of documents or a table) and builds the
   sampling frame from the VDAB and DWSE extracts;
2. :mod:`~analysis.plans.sample` draws a stratified sample with recorded inclusion probabilities;
3. :mod:`~analysis.plans.sheets` writes blind coding sheets per coder and reads them back;
4. :mod:`~analysis.plans.agreement` computes inter-coder agreement and the reconciled codes;
5. :mod:`~analysis.plans.concordance` flags every POP automatically (POP vs attest vs followed training);
6. :mod:`~analysis.plans.estimates` turns the codes into design-based and combined estimates;
7. :mod:`~analysis.plans.tables` writes the bundle's ``plans_*`` tables (never any POP text).

:mod:`~analysis.plans.codebook` is the codebook as code; :mod:`~analysis.plans.synth` writes synthetic
POPs with known codes for the demo study.
"""
