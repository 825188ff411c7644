"""Snakemake script: group/participants.tsv, the usable rows and analysed columns of participants.tsv
(rviflow.io.bids.clean_participants; the excluded rows are reported at parse time and in qc.tsv)."""
from rviflow.pipeline.runner import run

sm = snakemake  # noqa: F821 (injected by Snakemake)
run(sm, "rviflow.io.bids:write_participants_table", participants_tsv=sm.input[0], out=sm.output[0],
    groups=sm.params.groups, covariates=list(sm.params.covariates), site_column=sm.params.site_column,
    symptoms=list(sm.params.symptoms))
