"""What-if sweeps: a grid (or list) of ``train``/``serve`` parameters from a TOML file, run in
parallel on local processes or a Dask cluster, stored per point (resume) and written as one
tidy table (Parquet or CSV). See ``sim.sweep.spec`` for the file format and
docs/design-search.md for the design."""

from sim.sweep.runner import SweepRun, run_sweep
from sim.sweep.spec import SweepSpec, load_sweep, parse_sweep

__all__ = ["SweepRun", "SweepSpec", "load_sweep", "parse_sweep", "run_sweep"]
