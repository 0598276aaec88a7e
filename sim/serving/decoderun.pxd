# C types of sim/serving/decoderun.py for its compiled build (Cython pure-Python mode:
# this file augments the .py, which stays plain Python); sim/serving/lean.pxd cimports them.

cdef class _Cell:
    cdef public long long lo, hi, xl, xh
    cdef public double fx, l0, h0, l1, h1
    cdef public bint has_upper

cdef class DecodeClock:
    cdef public object timer
    cdef object _price
    cdef dict _cache, _cells, _last, _steps, _near, _pairs
    cpdef double step(self, long long n, long long kv_sum)
    cpdef double mixed(self, long long prompts, long long tok, long long n, long long kv_sum)
    cdef tuple _bracket(self, long long x)
    cdef tuple _pair(self, long long n_p, long long xl, long long xh, long long n, long long m)
    cdef double _row(self, long long n_p, long long x, long long n, long long m)
    cdef _Cell _cell(self, long long n, long long m)
    cdef void _upper(self, _Cell cell)
    cdef double _at(self, _Cell cell, long long m)
    cpdef tuple advance(self, long long n, long long m0, long long steps, double t0,
                        double deadline)
    cdef void _price_rest(self, long long n, long long m, long long end)

cpdef long long run_fit(long long[:] d2, long long s0, long long n, long long bs,
                        long long steps, long long free)
cpdef tuple run_blocks(long long[:] d2, long long[:] e2, long long s0, long long n,
                       long long bs, long long m)
