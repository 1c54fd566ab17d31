"""Data-parallel training under `torchrun`: process-group set-up, rank-0-only work, shared decisions; the
CPU's native bf16 units (`bf16_units`), which decide the precision training runs in; and `machine()`, the
one-line description of this machine that records and checkpoints carry.

`torchrun --nproc_per_node=N -m sidrec train|run ...` starts N processes with RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT in the environment; `init()` joins them into one process group
(gloo on CPU, NCCL on CUDA). Without those variables (a plain `sidrec` command) everything here is a
no-op and the world is one process. Multi-node runs use torchrun's standard rendezvous flags
(`--nnodes`, `--node_rank`, `--rdzv_endpoint`); nothing here depends on how the ranks were started.

Rules the pipeline follows: rank 0 alone writes files; the other ranks wait while it runs a stage
(`on_main`), learn its outcome (and any error) by broadcast, and every decision that ends a loop
(early stopping, the wall-clock cap) is taken on rank 0 and broadcast (`broadcast`).
"""

from __future__ import annotations

import atexit
import datetime
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world_size() -> int:
    """Processes in the job: the process group's size, else WORLD_SIZE from torchrun, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one process that writes files and logs."""
    return rank() == 0


def active() -> bool:
    """True when this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: str = "auto") -> bool:
    """Join the torchrun process group when launched by torchrun with WORLD_SIZE > 1; returns `active()`.

    Args:
        device: train.device ("auto", "cpu", "cuda", ...): NCCL when it resolves to CUDA, gloo otherwise.
    """
    if active() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return active()
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank())
    # Validation and the stages run on rank 0 while the others wait in a collective: allow hours.
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(hours=6))
    atexit.register(_close)
    return True


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launcher() -> str:
    """The torchrun prefix that started this process ("" for a plain command), for records' `command`.

    `torchrun --nproc_per_node=N -m ` (plus `--nnodes=K` on several machines); rendezvous flags, which
    name a host, are left to the reader.
    """
    world = world_size()
    if world <= 1:
        return ""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    nodes = f"--nnodes={world // per_node} " if per_node < world else ""
    return f"torchrun {nodes}--nproc_per_node={per_node} -m "


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(obj: T) -> T:
    """Rank 0's `obj` on every rank (a picklable object); the object itself in a single process."""
    if not active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], T]) -> T | None:
    """Run `fn` on rank 0 only while the other ranks wait; rank 0's error stops every rank.

    Returns `fn()`'s result on rank 0 (and in a single process), None on the other ranks.
    """
    if not active():
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:  # every rank must leave the collective below, then rank 0 re-raises
            error = err
    message = broadcast(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if message is not None:
        raise ValueError(f"rank 0 failed: {message}")
    return result


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64); the values themselves in a single process."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def bf16_units() -> str:
    """The CPU's native bf16 matmul units: 'AMX', 'AVX512-BF16', or 'no native bf16' (fp32 runs there).

    Two machines with the same model name (e.g. 'AMD EPYC') can differ here, and with it the precision
    `train.precision=auto` picks; records name it so that a reader knows which class a number is from.
    """
    cpu = getattr(torch, "cpu", None)
    for name, label in (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX512-BF16")):
        if getattr(cpu, name, lambda: False)():
            return label
    return "no native bf16"


def machine() -> str:
    """This machine in one line: CPU model and its bf16 units, cores, torch version, threads (and GPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    desc = f"{cpu} ({bf16_units()}), {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


__all__ = [
    "active",
    "all_sum",
    "barrier",
    "bf16_units",
    "broadcast",
    "init",
    "is_main",
    "local_rank",
    "machine",
    "on_main",
    "rank",
    "world_size",
]
