"""rviflow: ReHo, CBF and regional vulnerability in depression, at cohort scale."""

__version__ = "0.1.0"

import warnings as _warnings

# abagen 0.1.3 imports pkg_resources (setuptools < 81 is locked for it), which warns on every import;
# the warning is about abagen's future, not about a result.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
