"""Charts for clustersim results, drawn with matplotlib's object API (no pyplot state).

``sim.plots.charts`` holds the shared helpers every scenario uses (memory-breakdown stacked
bars, roofline with ops placed, scaling curves, KV cache vs context, expert-load histogram,
speedup heatmap, throughput-latency curves) in one house style, plus ``save`` which writes
byte-stable PNGs. ``sim.plots.timeline`` (training DES Gantt charts) and ``sim.plots.serving``
(serving charts) live beside it and are owned by the engines that produce their data.
"""
