"""Reading a run directory into group metrics and reports. Needs no training code.

write_report(run_dir, out=None)        report.html, report.json and groups.csv (debias.report.build)
write_comparison(runs, out)            one page comparing several runs on the same test images (.compare)
metric_frames(run_dir)                 fairlearn MetricFrame per model, for your own analysis (.exports)
"""

from debias.report.build import write_report
from debias.report.compare import write_comparison
from debias.report.exports import metric_frames

__all__ = ["metric_frames", "write_comparison", "write_report"]
