"""A dataset in memory: a flat frame (raw tables joined, or a feature-store training set)
encoded into Features, its Labels and the train / valid / test task rows.

Flow of data: grec.data.tables (`load_tables` -> `join_tables`) -> grec.data.split ->
`FeatureSpec.fit` on the training rows (grec.data.spec) -> `FeatureSpec.encode` ->
`build_task_rows` (grec.data.task_rows). A training set too large for memory streams
instead (grec.data.stream).

Dimension letters: N impressions, R task rows, B batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from grec.data.contract import TELECOM, Contract
from grec.data.order import BLOCK_ROWS, BUFFER_BLOCKS, block_sizes, epoch_order, rank_batches, visit_rank
from grec.data.text import TextEmbeddingStore
from grec.data.batch import Batch, Features
from grec.data.spec import FeatureSpec
from grec.data.split import TimeSplit, split_masks
from grec.data.task_rows import Labels, TaskRows, build_task_rows


@dataclass
class Dataset:
    """Everything training and evaluation need: encoded features, labels and the three row sets."""

    spec: FeatureSpec
    features: Features
    labels: Labels
    split: TimeSplit
    rows: dict[str, TaskRows]  # train / valid / test
    source: str = ""

    def batch(self, rows: TaskRows) -> Batch:
        """Rows -> a Batch holding each distinct impression's features once."""
        unique, example = torch.unique(rows.impression, return_inverse=True)
        return Batch(self.features.take(unique), example, rows.use_case)

    def batches(self, rows: TaskRows, batch_size: int, generator: torch.Generator | None = None,
                target: str = "label", buffer_blocks: int = BUFFER_BLOCKS,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
        """Yield (Batch, targets, positions in `rows`), a batch holding each impression once.

        Without a generator the rows come grouped by impression in impression order (evaluation);
        with one, in the epoch order of grec.data.order over the rows' impressions in blocks of
        BLOCK_ROWS (training): the order a StreamingDataset reads the same rows from parquet in.
        An impression's rows stay in their order in `rows` (use case by use case). With shard =
        (rank, ranks), only every ranks-th training batch from the rank-th is made (data parallel)."""
        if generator is None:
            for chunk in torch.argsort(rows.impression, stable=True).split(batch_size):
                part = rows.take(chunk)
                yield self.batch(part), part.targets(target), chunk
            return
        impressions = torch.unique(rows.impression)  # sorted: blocks are consecutive runs of it
        local = torch.searchsorted(impressions, rows.impression)  # (R,) row -> index into impressions
        block = local // BLOCK_ROWS
        sizes = block_sizes(len(impressions))
        by_block = torch.argsort(block, stable=True)
        ends = torch.cumsum(torch.bincount(block, minlength=len(sizes)), 0).tolist()
        first = 0  # the epoch's batches before this buffer
        for ids, perm in epoch_order(sizes, buffer_blocks, generator):
            picked, position, offset = [], [], 0  # the buffer's rows, and their impression's place in it
            for b in ids:
                sel = by_block[(ends[b - 1] if b else 0):ends[b]]
                picked.append(sel)
                position.append(local[sel] - b * BLOCK_ROWS + offset)
                offset += sizes[b]
            picked, position = torch.cat(picked), torch.cat(position)
            order = picked[torch.argsort(visit_rank(perm)[position], stable=True)]
            for _, chunk in rank_batches(order, batch_size, first, shard):
                part = rows.take(chunk)
                yield self.batch(part), part.targets(target), chunk
            first += -(-len(order) // batch_size)


def dataset_from_frame(
    frame: pd.DataFrame,
    split: TimeSplit | None,
    upsample: dict[str, int] | None = None,
    spec: FeatureSpec | None = None,
    texts: TextEmbeddingStore | None = None,
    source: str = "",
    contract: Contract = TELECOM,
) -> Dataset:
    """A flat frame (raw tables joined, or a feature-store training set) -> Dataset: fit the spec
    on training rows with the contract's columns and tasks (unless a spec is given: then its
    columns and tasks win), encode, and build each split's task rows. Rows are split by the
    contract's split column where it has one (a source split by other rules than time, such as
    Census), else by `split`'s times."""
    masks = split_masks(frame, contract, split)
    if spec is None:
        spec = FeatureSpec.fit(frame[masks["train"]], **contract.feature_spec_columns())
    features = spec.encode(frame, texts)
    labels = Labels.from_frame(frame, spec.tasks)
    flows = features.flow.numpy()
    rows = {
        name: build_task_rows(labels, np.flatnonzero(mask), flows, upsample if name == "train" else None, spec.tasks)
        for name, mask in masks.items()
    }
    return Dataset(spec, features, labels, split, rows, source=source)

