"""abagen backend, run by the abagen environment's python (numpy < 2, pandas < 2): the rule calls
`python scripts/abagen_expression.py ATLAS LABELS AHBA_DIR OPTIONS_JSON OUT` (rviflow.transcriptomics.expression)."""
import json
import sys

from rviflow.errors import InputError
from rviflow.transcriptomics.expression import abagen_expression, write_expression
from rviflow.preprocess.parcellate import read_labels

atlas_image, atlas_labels, ahba_dir, options, out = sys.argv[1:6]
try:
    expr, donors = abagen_expression(atlas_image, read_labels(atlas_labels), ahba_dir, json.loads(options))
except InputError as exc:
    sys.exit(f"rviflow: {exc}")
write_expression(expr, out)
print(f"abagen: {expr.shape[0]} regions x {expr.shape[1]} genes from donors {donors}; "
      f"{int(expr.isna().all(axis=1).sum())} regions without samples")
