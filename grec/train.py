"""Training: AdamW, early stopping on the validation split (a window carved from the training
period, never the test week), a checkpoint per epoch, a progress bar, seeds.

Early stopping watches the validation log-loss over all (example, task) rows: per-task AUCs of the
sparse conversion tasks swing by several points between epochs on a week of data, the pooled loss
does not. The per-use-case AUCs are logged beside it.

Single-task baselines train one member per task, each on its own rows with its own early stopping.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from grec import distributed
from grec.data.batch import Batch
from grec.data.dataset import Dataset
from grec.data.task_rows import TaskRows
from grec.data.order import BUFFER_BLOCKS
from grec.data.schema import SchemaError
from grec.data.stream import StreamedRows
from grec.errors import UserError
from grec.evaluate import mean_auc_by_use_case, predict
from grec.model.trees import PerTaskTrees, fit_trees


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 2048  # rows (example, task) per step
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 2  # epochs without validation improvement before stopping
    shuffle_buffer: int = BUFFER_BLOCKS  # blocks of impressions shuffled together (grec.data.order)
    lr_decay: float = 0.3  # learning rate factor after an epoch without validation improvement
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    progress: bool = True
    # "label" (the 0/1 outcomes), or "oracle": the true probabilities of simulated data as soft
    # targets, which estimates the best score the observable features allow (the reachable ceiling)
    target: str = "label"
    resume: bool = False  # go on from the checkpoint a stopped run left (grec.train.fit)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one entry per epoch
    best_epoch: int = 0
    best_valid_loss: float = float("inf")
    seconds: float = 0.0
    rows_per_second: float = 0.0
    steps: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)  # bit-identical reruns on CPU; warns on GPU ops without one


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _cross_entropy(target: np.ndarray, prob: np.ndarray) -> float:
    """Mean binary cross-entropy; with 0/1 targets it is the log-loss."""
    p = np.clip(prob, 1e-7, 1 - 1e-7)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log1p(-p)))


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class NonFiniteLoss(UserError, FloatingPointError):
    """Training met a loss that is not a number: stopped before the step that would spread it to
    every weight."""


def nonfinite_message(step: int, epoch: int, loss: str, batch: Batch, spec) -> str:
    """Where a non-finite loss came from: the input columns with infinities or NaN in the batch
    (by the contract's names), else a training that diverged."""
    f, found = batch.features, []
    for field_name, names in (("context_numerical", spec.context_numerical), ("item_numerical", spec.item_numerical),
                              ("seq_item_numerical", spec.item_numerical)):
        values = getattr(f, field_name)
        bad = ~torch.isfinite(values.reshape(-1, values.shape[-1])).all(0) if values.numel() else []
        found += [spec.user_name(names[j]) + (" (of a history's items)" if field_name.startswith("seq") else "")
                  for j in np.flatnonzero(np.asarray(bad))]
    for field_name, name in (("search", "the search query vectors"), ("item_image", "image_embedding"),
                             ("item_text", "the description vectors")):
        if not torch.isfinite(getattr(f, field_name)).all():
            found.append(name)
    where = (f"non-finite values in this batch's {', '.join(dict.fromkeys(found))}: check those columns "
             "(`grec validate` refuses NaN and infinities in the tables)" if found else
             "every input of this batch is finite: the training diverged; lower the learning rate (--lr)")
    return f"training stopped at step {step} (epoch {epoch}): {loss}; {where}"


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, labels: torch.Tensor,
               world: distributed.World | None = None) -> float:
    """One optimizer step on a batch; returns its loss (label cross-entropy plus the router's
    auxiliary losses). A non-finite loss raises FloatingPointError before any weight changes; under
    torchrun every rank sees the same verdict (a rank stopping alone would leave the others
    waiting in the gradients' all-reduce)."""
    out = model(batch)
    loss = F.binary_cross_entropy_with_logits(out.logits, labels) + out.aux_loss
    verdict = loss.detach().clone()
    if world is not None and world.distributed:
        import torch.distributed as dist

        dist.all_reduce(verdict)
    if not torch.isfinite(verdict):
        raise FloatingPointError(f"loss {float(loss)}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _validate(model: nn.Module, data: Dataset, rows: TaskRows, target: str, device, world: distributed.World):
    """(log-loss, mean AUC by use case) of `rows`, scored on rank 0 and broadcast: every rank
    then takes the same learning-rate and stopping decisions."""
    result = None
    if world.is_main:
        prob = predict(model, data, rows, device=device)
        # no validation rows (a tiny task): train every epoch and keep the last weights
        loss = _cross_entropy(rows.targets(target).numpy(), prob) if len(prob) else math.nan
        result = loss, mean_auc_by_use_case(rows, prob, data.spec.tasks.use_cases)
    return distributed.broadcast(result, world)


def fit(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    train_rows: TaskRows | None = None,
    valid_rows: TaskRows | None = None,
    checkpoint: Path | None = None,
    desc: str = "train",
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train in place; on return the model holds the weights of its best validation epoch.
    `on_epoch` gets each epoch's history entry as it is made (experiment tracking; rank 0 only).
    With `config.resume` and a `checkpoint` on disk, training goes on after its last epoch, from its
    weights, optimizer, schedule and random states: the model an uninterrupted run makes.

    Under torchrun (grec.distributed) each rank trains on its share of every epoch's batches
    through DistributedDataParallel; rank 0 validates, decides and writes the checkpoint."""
    seed_everything(config.seed)
    world = distributed.world()
    device = distributed.device(world, resolve_device(config.device))
    model.to(device)
    train_rows = data.rows["train"] if train_rows is None else train_rows
    valid_rows = data.rows["valid"] if valid_rows is None else valid_rows
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.lr_decay, patience=0)
    generator = torch.Generator().manual_seed(config.seed)  # the same epoch order on every rank
    result, best_state, stale, first = TrainResult(), None, 0, 1
    if config.resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["rng"])
        best_state, stale, result.history = state["best_state"], state["stale"], state["history"]
        result.best_epoch, result.best_valid_loss = state["best_epoch"], state["best_valid_loss"]
        first = state["epoch"] + 1
        if stale >= config.patience:
            first = config.epochs + 1  # it had stopped early: nothing left to train
    stepped = model  # wrapped after a resume: DDP starts every rank from rank 0's weights
    if world.distributed:
        stepped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    start = time.perf_counter()
    for epoch in range(first, config.epochs + 1):
        model.train()
        total, n = 0.0, 0
        # batch_size is the step's: each of N ranks takes every N-th slice of batch_size / N rows, so
        # a step averages the gradients of the rows one process would have taken in one batch
        per_rank = -(-config.batch_size // world.size)
        n_batches = -(-len(train_rows) // per_rank) // world.size
        batches = data.batches(train_rows, per_rank, generator, config.target, config.shuffle_buffer,
                               shard=(world.rank, world.size))
        bar = tqdm(
            distributed.together(batches, world, device),
            total=n_batches,
            desc=f"{desc} epoch {epoch}",
            disable=not config.progress or not world.is_main,
            leave=False,
        )
        for batch, labels, _ in bar:
            try:
                loss = train_step(stepped, optimizer, batch.to(device), labels.to(device), world)
            except FloatingPointError as e:
                raise NonFiniteLoss(nonfinite_message(result.steps + 1, epoch, str(e), batch, data.spec)) from None
            total += loss * len(labels)
            n += len(labels)
            result.steps += 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        valid_loss, auc = _validate(model, data, valid_rows, config.target, device, world)
        if not math.isnan(valid_loss):
            scheduler.step(valid_loss)
        entry = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": total / max(n, 1),
                 "valid_loss": valid_loss, "valid_auc": auc["mean"],
                 **{f"valid_auc_{u}": auc[u] for u in data.spec.tasks.use_cases if u in auc}}
        result.history.append(entry)
        if on_epoch is not None and world.is_main:
            on_epoch(entry)
        if valid_loss < result.best_valid_loss:
            result.best_epoch, result.best_valid_loss, stale = epoch, valid_loss, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if checkpoint is not None and world.is_main:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            _atomic_torch_save(
                {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "rng": torch.get_rng_state(),
                 "best_state": best_state, "best_epoch": result.best_epoch, "best_valid_loss": result.best_valid_loss,
                 "stale": stale, "history": result.history, "train_config": asdict(config)},
                checkpoint,
            )
        if stale >= config.patience and len(valid_rows):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    result.rows_per_second = len(train_rows) * max(len(result.history) - first + 1, 0) / max(result.seconds, 1e-9)
    return result


def fit_single_task(model: nn.Module, data: Dataset, config: TrainConfig, checkpoint_dir: Path | None = None,
                    on_epoch: Callable[[dict], None] | None = None):
    """Train each member of a SingleTask model on its own task's rows. Returns {task: TrainResult}.
    `on_epoch` entries carry the member's task name under "task"."""
    results = {}
    for t, member in enumerate(model.members):
        train, valid = (_task_rows(data, data.rows[s], t) for s in ("train", "valid"))
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member-{t}.pt"
        name = data.spec.tasks.task_name(t)
        member_callback = None if on_epoch is None else (lambda entry, name=name: on_epoch({**entry, "task": name}))
        results[t] = fit(member, data, config, train, valid, ckpt, desc=f"task {t}", on_epoch=member_callback)
    return results


def _task_rows(data: Dataset, rows: TaskRows, task: int) -> TaskRows:
    return rows.take((rows.task(len(data.spec.tasks.use_cases)) == task).nonzero().squeeze(1))


def train_model(model: nn.Module, data: Dataset, config: TrainConfig, checkpoint_dir: Path | None = None,
                on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train any model. Returns a summary: seconds, rows per second, best epoch(s), history."""
    if isinstance(data.rows["train"], StreamedRows) and (isinstance(model, PerTaskTrees) or hasattr(model, "members")):
        raise SchemaError(f"{data.source}: {type(model).__name__} trains from memory (each task's rows apart), and "
                          f"these {len(data.rows['train']):,} training rows are streamed; raise GREC_MEMORY_BUDGET "
                          "if they fit, or train a multi-task network (grec, mmoe, shared_bottom)")
    if distributed.world().distributed and (isinstance(model, PerTaskTrees) or hasattr(model, "members")):
        raise SchemaError(f"{type(model).__name__} trains one task at a time in one process; under torchrun "
                          "train a multi-task network (grec, mmoe, shared_bottom)")
    if isinstance(model, PerTaskTrees):
        return fit_trees(model, data, config.seed, config.target, on_epoch)
    if hasattr(model, "members"):
        per_task = fit_single_task(model, data, config, checkpoint_dir, on_epoch)
        seconds = sum(r.seconds for r in per_task.values())
        rows_seen = sum(r.rows_per_second * r.seconds for r in per_task.values())
        return {
            "seconds": seconds,
            "rows_per_second": rows_seen / seconds,
            "best_epoch": {t: r.best_epoch for t, r in per_task.items()},
            "history": {t: r.history for t, r in per_task.items()},
        }
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / "checkpoint.pt"
    r = fit(model, data, config, checkpoint=ckpt, on_epoch=on_epoch)
    return {"seconds": r.seconds, "rows_per_second": r.rows_per_second, "best_epoch": r.best_epoch,
            "best_valid_loss": r.best_valid_loss, "history": r.history}
