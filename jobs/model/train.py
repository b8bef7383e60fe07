"""Distributed training with TorchDistributor: rank-sharded pyarrow reads, DDP, per-epoch checkpoints.

Each rank reads its own row groups of the training snapshot's parquet files (round-robin over
the sorted (file, row group) list), so the shards are disjoint and together cover the snapshot.
Ranks may hold different row counts; DDP's ``join`` lets them finish an epoch unevenly.
"""
from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
import torch.distributed as dist

from jobs.model.network import NetworkShape, UserModel, multitask_loss

TENSOR_COLUMNS = ("behaviour", "text", "interest", "categories")


@dataclass(frozen=True)
class TrainSettings:
    files: tuple[str, ...]       # the snapshot's parquet files (paths or URIs)
    checkpoint_dir: str          # one directory per training fingerprint: reruns resume from it
    shape: NetworkShape
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    seed: int
    use_gpu: bool = False

    def fingerprint_payload(self) -> dict:
        data = asdict(self)
        data.pop("files")
        data.pop("checkpoint_dir")
        return data


def _open(uri: str) -> pq.ParquetFile:
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return pq.ParquetFile(fs.open_input_file(path))
    return pq.ParquetFile(uri)


def read_shard(files: tuple[str, ...], rank: int, world: int) -> pa.Table:
    """This rank's row groups: every ``world``-th of the sorted (file, row group) list, starting at ``rank``."""
    opened = [_open(f) for f in sorted(files)]  # each file's footer is read once
    units = [(pf, g) for pf in opened for g in range(pf.num_row_groups)]
    tables = [pf.read_row_group(g) for pf, g in units[rank::world]]
    if not tables:
        return opened[0].schema_arrow.empty_table() if opened else pa.table({})
    return pa.concat_tables(tables)


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    flat = pa.concat_arrays([c.flatten() for c in column.chunks]) if column.num_chunks else pa.array([], pa.float32())
    # Rows from the column's length: a source without categories has width 0, where -1 cannot be inferred.
    return flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), width)


def shard_tensors(table: pa.Table, shape: NetworkShape) -> dict[str, torch.Tensor]:
    """Training rows (holdout excluded) as tensors."""
    table = table.filter(pc.invert(table["holdout"]))
    widths = {"behaviour": shape.n_behaviour, "text": shape.text_width, "interest": shape.interest_width,
              "categories": shape.n_categories}
    out = {c: torch.from_numpy(_matrix(table[c], widths[c])) for c in TENSOR_COLUMNS}
    out["bought"] = torch.tensor(table["bought"].to_numpy(), dtype=torch.float32)
    out["churned"] = torch.tensor(table["churned"].to_numpy(), dtype=torch.float32)
    out["tier"] = torch.tensor(table["spend_tier"].to_numpy(), dtype=torch.long)
    return out


def _all_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _standardisation(behaviour: torch.Tensor, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the behaviour features over all ranks' rows."""
    stats = torch.stack([behaviour.sum(0), (behaviour.double() ** 2).sum(0).float(),
                         torch.full((behaviour.shape[1],), float(behaviour.shape[0]))]).double()
    total = _all_sum(stats, world)
    n = total[2].clamp(min=1)
    mean = total[0] / n
    std = (total[1] / n - mean ** 2).clamp(min=0).sqrt()
    return mean.float(), std.float()


def checkpoint_path(directory: str, epoch: int) -> Path:
    return Path(directory) / f"epoch-{epoch:04d}.pt"


def latest_checkpoint(directory: str) -> Path | None:
    found = sorted(Path(directory).glob("epoch-*.pt"))
    return found[-1] if found else None


def _save_checkpoint(directory: str, epoch: int, model: UserModel, optimizer, history: list[float]) -> None:
    path = checkpoint_path(directory, epoch)
    tmp = path.with_suffix(".tmp")
    torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "history": history}, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint under the real name


def train_loop(settings: TrainSettings, rank: int = 0, world: int = 1) -> dict:
    """Train (or resume) and return {"history": mean loss per epoch, "rows": rows per rank, "resumed_from": epoch}.

    Deterministic by seed: initial weights from ``seed``, each epoch's order from (seed, epoch, rank),
    no dropout. Rank 0 writes a checkpoint after every epoch; a rerun continues after the latest one.
    """
    torch.manual_seed(settings.seed)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the ranks share this machine's cores
    cuda = settings.use_gpu and torch.cuda.is_available()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    table = read_shard(settings.files, rank, world)
    _write_manifest(settings.checkpoint_dir, rank, table)
    data = {k: v.to(device) for k, v in shard_tensors(table, settings.shape).items()}
    n = data["bought"].shape[0]

    model = UserModel(settings.shape).to(device)
    mean, std = _standardisation(data["behaviour"].cpu(), world)
    model.set_standardisation(mean.to(device), std.to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    history: list[float] = []
    start = 0
    latest = latest_checkpoint(settings.checkpoint_dir)
    if latest is not None:
        saved = torch.load(latest, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        history, start = list(saved["history"]), int(saved["epoch"]) + 1

    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    for epoch in range(start, settings.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed * 100_003 + epoch * 101 + rank))
        total = torch.zeros(2, dtype=torch.float64)
        ddp.train()
        with ddp.join() if world > 1 else nullcontext():
            for lo in range(0, n, settings.batch_size):
                idx = order[lo:lo + settings.batch_size].to(device)
                out = ddp(data["behaviour"][idx], data["text"][idx], data["interest"][idx])
                loss = multitask_loss(out, data["bought"][idx], data["churned"][idx], data["categories"][idx],
                                      data["tier"][idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += torch.tensor([loss.item() * len(idx), len(idx)], dtype=torch.float64)
        total = _all_sum(total, world)
        history.append(float(total[0] / max(total[1], 1)))
        if rank == 0:
            _save_checkpoint(settings.checkpoint_dir, epoch, model, optimizer, history)
        if world > 1:
            dist.barrier()
    return {"history": history, "rows": n, "resumed_from": start}


def _write_manifest(directory: str, rank: int, table: pa.Table) -> None:
    """Which users this rank read (audit trail for the shard split)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    ids = table["user_id"].to_pylist() if table.num_columns else []
    (Path(directory) / f"shard-rank{rank}.json").write_text(json.dumps(sorted(ids)))


def _ddp_entry(settings: TrainSettings) -> dict:
    """What each TorchDistributor process runs: join the process group, train, leave."""
    backend = "nccl" if settings.use_gpu and torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    try:
        return train_loop(settings, dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def distributed_train(settings: TrainSettings, num_processes: int, local_mode: bool) -> dict:
    """Run ``train_loop`` in ``num_processes`` DDP processes (on the driver in local mode, else barrier tasks)."""
    from pyspark.ml.torch.distributor import TorchDistributor

    distributor = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=settings.use_gpu)
    return distributor.run(_ddp_entry, settings)


def final_state(settings: TrainSettings) -> dict:
    """The weights after the last epoch (from its checkpoint)."""
    path = checkpoint_path(settings.checkpoint_dir, settings.epochs - 1)
    return torch.load(path, map_location="cpu", weights_only=True)
