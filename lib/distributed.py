"""More than one process: what train.py and predict.py need when torchrun starts them.

    torchrun --standalone --nproc_per_node N train.py <the usual flags>

torchrun starts N copies of the command and tells each, through the environment, its RANK (0..N-1),
the WORLD_SIZE N and its LOCAL_RANK on its machine; PyTorch's DistributedDataParallel then averages
the gradients. Run without torchrun, there is no such environment: world size 1, no process group,
and every function here is a no-op, so a plain `python train.py` computes exactly what it always
did.

What the processes share, and how (docs/distributed.md):
  - the crops: every process draws the same epoch of crops from the seed; `Shard` gives each
    process its slice of every global batch (--batch-size is the total over the processes), so
    step k trains on the same crops whatever the number of processes;
  - the loss: pCE's denominator is the labeled pixels of the whole global batch (`label_share`),
    so the averaged gradient is the gradient of pCE over the global batch, exactly;
  - the scores: each process scores its share of the tiles and the confusion matrices are summed
    (`sum_over_processes`), so the metrics equal those of one process scoring everything.
Process 0 alone prints and writes files (torchvision's `save_on_master`); a bad flag or bad data
is met by every process alike, and only process 0 says so. A process that dies takes the others
down: torchrun stops the rest, and a collective that waits longer than TIMEOUT fails.
"""

import builtins
import datetime
import os

import torch
import torch.distributed as dist

from pce import UNLABELED

TIMEOUT = datetime.timedelta(minutes=30)  # a collective waiting this long means a process is gone


def rank_and_world():
    """(RANK, WORLD_SIZE) as torchrun sets them; (0, 1) for a plain run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main():
    return rank_and_world()[0] == 0


def setup(device):
    """Join the process group when torchrun started this process (gloo on CPU, NCCL on CUDA with
    one GPU per process, the LOCAL_RANK-th) and quiet print() on every process but 0. Returns the
    device this process computes on."""
    rank, world = rank_and_world()
    if world == 1:
        return device
    device = local_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    if rank != 0:  # torchvision's setup_for_distributed
        builtins.print = lambda *args, **kwargs: None
    return device


def local_device(device):
    """On CUDA under torchrun, this process's own GPU: the LOCAL_RANK-th of its machine."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def shard(sampler, batch_size):
    """`sampler` itself for a plain run, else this process's Shard of it."""
    return sampler if rank_and_world()[1] == 1 else Shard(sampler, batch_size)


def wrap(model, device):
    """The model as training sees it: DistributedDataParallel over N processes (with SyncBatchNorm
    on CUDA, so BatchNorm sees the global batch; on CPU each process normalises its own share),
    the model itself for one."""
    if rank_and_world()[1] == 1:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None
    )


def per_process_batch(batch_size):
    """--batch-size is the global batch: each of the N processes takes batch_size / N crops."""
    world = rank_and_world()[1]
    if batch_size % world:
        raise ValueError(
            f"--batch-size {batch_size} is the total over the processes: it must divide by the "
            f"{world} processes torchrun started"
        )
    return batch_size // world


class Shard(torch.utils.data.Sampler):
    """This process's share of `sampler`'s crops: every process draws the same epoch of crops (same
    seed), pads it to a multiple of N with its first crops, and takes crops rank, rank + N, ... of
    each global batch, so the N shares of step k together are the one process's batch k."""

    def __init__(self, sampler, batch_size):
        self.sampler, self.batch_size = sampler, batch_size
        self.rank, self.world = rank_and_world()

    def __len__(self):
        return -(-len(self.sampler) // self.world)

    def __iter__(self):
        crops = list(self.sampler)
        crops += crops[: -len(crops) % self.world]
        for start in range(0, len(crops), self.batch_size):
            yield from crops[start : start + self.batch_size][self.rank :: self.world]


def label_share(labels, class_weights=None):
    """The factor that turns this process's pCE (mean over its own labeled pixels) into its part of
    the global batch's pCE: n_here * N / n_all. DDP averages the N gradients, so the result is
    the gradient of Σ CE·MASK / Σ MASK over the global batch. 1 for a plain run."""
    if rank_and_world()[1] == 1:
        return 1
    labeled = (labels != UNLABELED).double()
    if class_weights is not None:  # class-balanced pCE: its denominator counts w_{gt_i} a pixel
        labeled = labeled * class_weights.double().to(labels.device)[labels.clamp(min=0)]
    counts = torch.tensor([labeled.sum().item()], dtype=torch.float64)
    here = counts.item()
    dist.all_reduce(counts)
    return here * rank_and_world()[1] / counts.item() if counts.item() else 0.0


def share(items):
    """This process's part of a list of tiles or files: items rank, rank + N, ..."""
    rank, world = rank_and_world()
    return items[rank::world]


def sum_over_processes(tensor):
    """The element-wise sum of `tensor` over the processes (a confusion matrix: exact in int64)."""
    if rank_and_world()[1] > 1:
        dist.all_reduce(tensor)
    return tensor


def finish():
    if dist.is_initialized():
        dist.destroy_process_group()
