"""Snakemake script: a ready regions x genes table mapped onto the atlas (rviflow.transcriptomics.expression)."""
import contextlib

from rviflow.transcriptomics.expression import read_expression_table, write_expression
from rviflow.preprocess.parcellate import read_labels

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    write_expression(read_expression_table(sm.input.table, read_labels(sm.input.atlas_labels)), sm.output[0])
