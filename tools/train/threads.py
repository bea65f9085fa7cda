"""CPU threads for training with Debian's torch, whose matrix products go to the system BLAS
(OpenBLAS on Debian 12, with its own thread pool) while elementwise ops use torch's OpenMP pool.
Both pools spin while waiting, so running both at full width on a 2-core machine makes them
fight: measured here (docs/training.md), BLAS on every core with torch's own ops on one thread is
the fastest. This sets both at run time (OpenBLAS reads OPENBLAS_NUM_THREADS only at load).
"""

import ctypes

import torch


def _loaded_blas():
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {ln.split()[-1] for ln in f if "blas" in ln and ".so" in ln}
    except OSError:
        return []
    return sorted(paths)


def set_threads(blas_threads, torch_threads):
    """Returns a description of what was set."""
    torch.set_num_threads(torch_threads)
    done = []
    for path in _loaded_blas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        fn = getattr(lib, "openblas_set_num_threads", None)
        if fn is not None:
            fn(ctypes.c_int(blas_threads))
            done.append(path)
    return {"torch_threads": torch_threads, "blas_threads": blas_threads if done else None, "blas": done}
