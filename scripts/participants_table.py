"""Snakemake script: group/participants.tsv, the usable rows and analysed columns of participants.tsv
(rviflow.io.bids.clean_participants; the excluded rows are reported at parse time and in qc.tsv)."""
from rviflow.io.bids import clean_participants, read_participants, write_tsv

sm = snakemake  # noqa: F821 (injected by Snakemake)
g = sm.params.groups
raw = read_participants(sm.input[0], [], numeric=())
clean, problems = clean_participants(raw, g["column"], g["case"], g["control"], list(sm.params.covariates),
                                     sm.params.site_column, list(sm.params.symptoms))
used = ["participant_id", g["column"], *sm.params.covariates, sm.params.site_column, *sm.params.symptoms]
write_tsv(clean[[c for c in dict.fromkeys(used) if c and c in clean.columns]], sm.output[0])  # the columns used
with open(sm.log[0], "w") as fh:
    fh.write(f"{len(clean)} usable rows, {len({p['participant_id'] for p in problems})} excluded\n")
    fh.writelines(f"{p['participant_id']}: {p['reason']}\n" for p in problems)
