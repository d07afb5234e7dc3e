"""The order an epoch visits the training impressions in, the same for data in memory and data
streamed from parquet.

Impressions are stored in blocks (a parquet row group of `BLOCK_ROWS` rows: what training sets are
written with; in memory, consecutive chunks of the split's impressions). An epoch takes the blocks
in a seeded random order, `buffer_blocks` at a time, and visits the impressions of each buffer in
a seeded random order: a streaming reader needs only one buffer in memory, and a split that fits in
one buffer is shuffled whole. Both paths draw from the same generator in the same sequence, so
under one seed they visit the same impressions in the same order (tests/data/test_stream.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

BLOCK_ROWS = 8192  # impressions per block: the row-group size of the training sets written here
BUFFER_BLOCKS = 64  # blocks shuffled together: 524,288 impressions, about 0.3 GB encoded (text vectors by reference)


def block_sizes(n: int, block_rows: int = BLOCK_ROWS) -> list[int]:
    """Sizes of consecutive blocks over n impressions (the last one may be short)."""
    return [min(block_rows, n - start) for start in range(0, n, block_rows)]


def epoch_order(sizes: Sequence[int], buffer_blocks: int, generator: torch.Generator) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (block ids in ascending order, permutation of the buffer's impressions) per buffer.

    The buffer's impressions are those of its blocks concatenated in ascending block order; the
    permutation lists them in the order to visit (perm[i] is the buffer row visited i-th)."""
    blocks = torch.randperm(len(sizes), generator=generator)
    for start in range(0, len(sizes), buffer_blocks):
        ids = sorted(blocks[start:start + buffer_blocks].tolist())
        yield ids, torch.randperm(sum(sizes[b] for b in ids), generator=generator)


def rank_batches(order: torch.Tensor, batch_size: int, first: int, shard: tuple[int, int]) -> list[tuple[int, torch.Tensor]]:
    """(epoch batch number, rows) of the batches of `order` (rows in visiting order, cut every
    `batch_size`) that are shard = (rank, ranks)'s: every ranks-th batch of the epoch, counting
    from `first`, the number of the epoch's batches before these."""
    rank, ranks = shard
    return [(first + i, chunk) for i, chunk in enumerate(order.split(batch_size)) if (first + i) % ranks == rank]


def visit_rank(perm: torch.Tensor) -> torch.Tensor:
    """(n,) the position at which each buffer row is visited: the inverse of `perm`."""
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(len(perm))
    return rank
