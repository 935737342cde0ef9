"""What every figure is measured against: the machine and its dense matmul rate.

The machines these benchmarks run on are shared, so an absolute rate says little on its
own. Each section therefore times a float32 `tf.matmul` in the same process, right
beside the work it measures; a drop in both means the machine was busy, a drop in the
work alone means the work got slower.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np


def machine() -> dict[str, Any]:
    """CPU model, logical cores, memory and library versions of this machine."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "simd": sorted(f for f in flags if f in ("avx2", "avx512f", "fma", "avx512_bf16")),
        "memory_gib": memory_gib,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "load_average_1min_at_start": load,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def time_calls(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `fn` (which must block until done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_for(fn: Callable[[], Any], min_seconds: float, min_calls: int = 3) -> list[float]:
    """Seconds of each call of `fn`, repeated for at least `min_seconds` and `min_calls`."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def matmul_rate(
    shapes: Sequence[tuple[int, int, int]],
    min_seconds: float = 0.3,
    repeats: int = 3,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Dense `tf.matmul` GFLOP/s of [m, k] x [k, n] for each (m, k, n), in `dtype`
    (float32 unless given: bfloat16 and float16 probe the reduced formats).

    Each shape runs in a compiled tf.function for at least `min_seconds` per repeat;
    the best repeat is kept, since interference from other processes only ever slows a
    repeat down. Returns {"shapes": [{m, k, n, gflops_per_s}], "gflops_per_s": best}.
    """
    import tensorflow as tf

    matmul = tf.function(tf.matmul)
    rows = []
    for m, k, n in shapes:
        a = tf.cast(tf.random.normal([m, k]), dtype)
        b = tf.cast(tf.random.normal([k, n]), dtype)
        matmul(a, b).numpy()
        flops = 2.0 * m * k * n
        best = 0.0
        for _ in range(repeats):
            calls = 0
            start = time.perf_counter()
            while True:
                matmul(a, b)
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
            best = max(best, flops * calls / elapsed / 1e9)
        rows.append({"m": m, "k": k, "n": n, "gflops_per_s": best})
    return {"shapes": rows, "gflops_per_s": max(r["gflops_per_s"] for r in rows)}


def quick_reference() -> float:
    """GFLOP/s of a 1024³ matmul, a half-second probe of how busy the machine is."""
    return matmul_rate([(1024, 1024, 1024)], min_seconds=0.15, repeats=2)["gflops_per_s"]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
