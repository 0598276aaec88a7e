# C types for the compiled build of sim/serving/lean.py (Cython pure-Python mode; the .py
# stays plain Python): the decode-run helpers it calls as C.

from sim.serving.decoderun cimport DecodeClock, run_blocks, run_fit
