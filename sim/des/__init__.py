"""Discrete-event training simulation (SimPy): see docs/design-des.md."""
