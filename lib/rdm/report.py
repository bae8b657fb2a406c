"""``python -m rdm.report``: the report (REPORT.md, tables, figures, report.json) from a run's outputs.

Kept so that the Makefile, the Slurm report job and users' scripts keep their command; the report
is assembled by :mod:`rdm.pipeline.report`.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from rdm.errors import module_main
    from rdm.pipeline.report import main

    sys.exit(module_main(main))
