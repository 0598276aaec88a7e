"""Pure cost functions (never import simpy): FLOPs, memory, op lowering, roofline timing,
serving-iteration cost (compute side) and communication / step time (``comm``, ``analytic``)."""
