"""The device models live on, and how much memory it has.

Importing torch costs seconds, so the daemon only does it when an NVIDIA
device node exists; otherwise models live in RAM and memory comes from
/proc/meminfo.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from functools import lru_cache

from .residency import MemoryInfo


@lru_cache(maxsize=1)
def device_name() -> str:
    """"cuda:0" when torch sees a CUDA device, else "cpu"."""
    if not glob.glob("/dev/nvidia[0-9]*") or importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def probe() -> MemoryInfo:
    """Total and available memory of the model device, in bytes."""
    device = device_name()
    if device.startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info()
        return MemoryInfo(total_bytes=int(total), available_bytes=int(free), device=device)
    total, available = _meminfo()
    return MemoryInfo(total_bytes=total, available_bytes=available, device="cpu")


def _meminfo() -> tuple[int, int]:
    fields = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                fields[name] = int(rest.split()[0]) * 1024
    except OSError:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages, pages
    return fields.get("MemTotal", 0), fields.get("MemAvailable", fields.get("MemFree", 0))


def release_memory(device: str) -> None:
    """Give freed model memory back: collect garbage, and on CUDA empty torch's cache
    (freed tensors otherwise stay reserved by its allocator)."""
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def usable_cpus() -> int:
    """CPUs this process may run on (affinity and container limits, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
