"""ccvault: records camera streams into an indexed, crash-safe segment store."""

import os

__version__ = "0.1.0"

# numpy's OpenBLAS starts a thread per core at import, and they spin: ~0.08-0.17 s of CPU per
# process before any work (bench/motion.py), in every CLI command and motion worker. ccvault
# does no BLAS work worth threads, and parallelism is across processes. Set before anything
# imports numpy; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
