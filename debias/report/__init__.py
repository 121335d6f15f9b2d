"""Reading a run directory into group metrics and reports. Needs no training code.

`write_report(run_dir, out=None)` writes report.html and report.json (see debias.report.build).
"""

from debias.report.build import write_report

__all__ = ["write_report"]
