"""Scenarios and the generated report.

``sim.report.scenario`` defines the scenario convention (``Result``, ``publish``, discovery of
``scenarios/*.py``), ``sim.report.runner`` runs them all and ``sim.report.index`` renders the
gallery ``reports/index.md``. ``sim.report.lesson`` holds the lesson plan's lessons and
misconceptions as data.
"""

from sim.report.scenario import ChartFile, Result, publish

__all__ = ["ChartFile", "Result", "publish"]
