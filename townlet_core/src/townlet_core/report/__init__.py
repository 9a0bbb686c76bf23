"""`townlet report`: one self-contained HTML page of figures for one or more runs.

Reading is JSON only (`rundata`), the figures and the fields they come from are one table
(`catalog`), drawing is matplotlib's (`plotting`, the only module that imports it, inside
its functions), and the page is plain HTML (`page`). Importing this package loads neither
matplotlib nor torch.
"""

from townlet_core.report.build import Report, build_report
from townlet_core.report.catalog import FIGURES, FigureSpec
from townlet_core.report.plotting import INSTALL_HINT, MatplotlibMissingError
from townlet_core.report.rundata import RunData, read_run_data

__all__ = [
    "FIGURES",
    "INSTALL_HINT",
    "FigureSpec",
    "MatplotlibMissingError",
    "Report",
    "RunData",
    "build_report",
    "read_run_data",
]
