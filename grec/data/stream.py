"""Training sets larger than memory: each split read from parquet one buffer of row groups at a
time, and encoded to tensors per batch (on background threads where the machine has cores to spare:
`spare_cores`).

A StreamingDataset answers what grec.train.fit and grec.evaluate.predict ask of a Dataset (`spec`,
`split`, `rows`, `batches`) without holding the features. It holds one shuffle buffer
(`BUFFER_BLOCKS` row groups, encoded from Arrow by grec.data.encode_table with text vectors by
reference; where it prefetches, also the next one and the batches being prepared), the vectors of
the distinct texts, and the validation and test rows (the label, use case and flow of each
(example, task) row: AUC needs every score). Training rows are built per buffer.

Under one seed it visits the training rows in the order the in-memory Dataset does for the same
blocks (grec.data.order), and encodes them to the same tensors, so the two train the same model
(tests/data/test_stream.py). That holds when the row groups hold BLOCK_ROWS rows, as the training
sets written by `grec features training-set` do.

Dimension letters: R (example, task) rows, N impressions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Full, Queue

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import torch

from grec.data.contract import SPLITS, read_contract
from grec.data.batch import Batch
from grec.data.spec import FeatureSpec
from grec.data.tables import check_arrow_schema
from grec.data.task_rows import Labels, TaskRows, build_task_rows
from grec.data.encode_table import encode_table
from grec.data.manifest import read_manifest
from grec.data.order import BUFFER_BLOCKS, epoch_order, rank_batches, visit_rank
from grec.data.schema import SchemaError, oracle_columns
from grec.data.text import TextEmbeddingStore



class ParquetSplit:
    """One split on disk (a parquet file, or a folder of parquet shards) as its row groups: the
    blocks a StreamingDataset reads, in file order."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise SchemaError(f"{self.path}: file not found (a training-set split)")
        try:
            dataset = pads.dataset(str(self.path), format="parquet")
            self.fragments = [rg for f in dataset.get_fragments() for rg in f.split_by_row_group()]
            self.sizes = [f.row_groups[0].num_rows for f in self.fragments]
            self.starts = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)[:-1]]).tolist()  # first row of each block
        except (pa.ArrowInvalid, OSError) as error:
            raise SchemaError(f"{self.path}: not readable as parquet ({error})") from error
        self.schema = dataset.schema

    def __len__(self) -> int:
        return sum(self.sizes)

    def read(self, blocks: Iterable[int], columns: list[str]) -> pa.Table:
        """The rows of `blocks`, concatenated in the order given."""
        return pa.concat_tables([self.fragments[b].to_table(columns=columns) for b in blocks])

    def frames(self, columns: list[str]):
        """Each block's `columns` as a pandas frame, in file order."""
        for b in range(len(self.fragments)):
            yield self.read([b], columns).to_pandas()


@dataclass(frozen=True)
class StreamedRows:
    """The (example, task) rows of a streamed split that are never held: built per buffer."""

    split: str
    n: int

    def __len__(self) -> int:
        return self.n


class StreamingDataset:
    """A training set on disk (train/valid/test parquet and its manifest) read in blocks."""

    def __init__(self, set_dir: Path, upsample: dict[str, int] | None = None, spec: FeatureSpec | None = None,
                 texts: TextEmbeddingStore | None = None, splits: tuple[str, ...] = SPLITS):
        set_dir = Path(set_dir)
        manifest = read_manifest(set_dir)
        contract = read_contract(set_dir)
        self.source, self.split, self.upsample = str(set_dir), manifest.time_split(), upsample
        self.splits = {name: ParquetSplit(set_dir / f"{name}.parquet") for name in splits}
        for name, split in self.splits.items():
            check_arrow_schema(split.schema, contract.tables["impressions"], str(split.path))
        if spec is None:
            if "train" not in self.splits:
                raise SchemaError(f"{set_dir}: the feature vocabularies are fitted on the train split; give a spec")
            columns = FeatureSpec(**contract.feature_spec_columns()).fit_columns()
            spec = FeatureSpec.fit_parts(self.splits["train"].frames(columns), **contract.feature_spec_columns())
        self.spec = spec
        self.texts = texts if texts is not None else TextEmbeddingStore()
        self._encode_texts()
        oracles = oracle_columns(spec.tasks)
        has_oracle = set(oracles) <= set(next(iter(self.splits.values())).schema.names)
        self._label_columns = [*spec.tasks.tokens, *spec.tasks.label_columns, *(oracles if has_oracle else ())]
        self._columns = list(dict.fromkeys([*spec.input_columns(), *self._label_columns]))
        self.rows: dict[str, TaskRows | StreamedRows] = {}
        self._block_rows: dict[str, list[int]] = {}  # first row of each block in rows[split], and the end
        for name in self.splits:
            held = self._split_rows(name, upsample if name == "train" else None)
            counts = [len(r) for r in held]
            self._block_rows[name] = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).tolist()
            self.rows[name] = StreamedRows(name, sum(counts)) if name == "train" else _concat(held)

    def _encode_texts(self) -> None:
        """Encode every distinct search query and description once, before training reads them
        per batch (the store then only looks up)."""
        distinct = set()
        for split in self.splits.values():
            for b in range(len(split.fragments)):
                table = split.read([b], ["search_query", "description"])
                for column in table.columns:
                    distinct.update(pc.unique(column).to_pylist())
        self.texts.lookup(np.array(sorted(distinct), dtype=object))

    def _task_rows(self, table: pa.Table, upsample) -> TaskRows:
        """The (example, task) rows of `table`'s impressions, numbered from 0."""
        frame = table.select(self._label_columns).to_pandas()
        labels, flows = Labels.from_frame(frame, self.spec.tasks), self.spec.flow_codes(frame)
        return build_task_rows(labels, np.arange(len(frame)), flows, upsample, self.spec.tasks)

    def _split_rows(self, name: str, upsample) -> list[TaskRows | StreamedRows]:
        """Each block's (example, task) rows, impressions numbered through the split; the
        training split's only counted (they are built again per buffer)."""
        split, out = self.splits[name], []
        for b in range(len(split.sizes)):
            rows = self._task_rows(split.read([b], self._label_columns), upsample)
            out.append(StreamedRows(name, len(rows)) if name == "train" else _shift(rows, split.starts[b]))
        return out

    def _split_of(self, rows) -> str:
        if isinstance(rows, StreamedRows):
            return rows.split
        for name, held in self.rows.items():
            if held is rows:
                return name
        raise SchemaError("a streamed dataset scores whole splits: pass one of its `rows` (train, valid, test)")

    def batches(self, rows, batch_size: int, generator: torch.Generator | None = None, target: str = "label",
                buffer_blocks: int = BUFFER_BLOCKS,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
        """Yield (Batch, targets, positions in `rows`) as Dataset.batches does: with a generator
        in the epoch order of grec.data.order (training; positions are then within the buffer),
        without one block by block, each block's rows grouped by impression. With shard = (rank,
        ranks), a training buffer's rows are encoded and batched only where the rank's batches
        (every ranks-th of the epoch) take them."""
        name = self._split_of(rows)
        if generator is None:
            buffers = self._blocks_in_order(name, batch_size)
        else:
            buffers = self._shuffled_buffers(name, generator, buffer_blocks, batch_size, shard)
        if not spare_cores():  # on the training thread: between steps, no thread competing with torch's
            yield from self._parts((load() for load in buffers), target)
            return
        yield from prefetch(self._parts(_prefetch_tables(buffers), target), depth=8)

    def _blocks_in_order(self, name: str, batch_size: int):
        """A loader per block, in file order (evaluation): (encoded rows, task rows, their
        batches, the position in rows[name] of the block's first row)."""
        split, held = self.splits[name], self.rows[name]
        for b in range(len(split.sizes)):
            start, end = self._block_rows[name][b], self._block_rows[name][b + 1]
            yield lambda b=b, start=start, end=end: self._block_part(name, b, start, end, held, batch_size)

    def _block_part(self, name, b, start, end, held, batch_size):
        split = self.splits[name]
        table = split.read([b], self._columns)
        if isinstance(held, StreamedRows):  # the training split, scored in order: build its rows
            part = self._task_rows(table, self.upsample)
        else:
            part = _shift(held.take(torch.arange(start, end)), -split.starts[b])
        chunks = torch.argsort(part.impression, stable=True).split(batch_size)
        return encode_table(self.spec, table, self.texts), part, chunks, start

    def _shuffled_buffers(self, name: str, generator: torch.Generator, buffer_blocks: int, batch_size: int,
                          shard: tuple[int, int]):
        """A loader per shuffle buffer, in the epoch order of grec.data.order: (encoded rows, task
        rows, the rank's batches of them in visiting order, 0)."""
        split = self.splits[name]
        upsample = self.upsample if name == "train" else None
        block_rows = np.diff(self._block_rows[name])
        first = 0  # the epoch's batches before this buffer (from the rows counted when opened)
        for ids, perm in epoch_order(split.sizes, buffer_blocks, generator):
            def load(ids=ids, perm=perm, first=first):
                table = split.read(ids, self._columns)
                part = self._task_rows(table, upsample)
                order = torch.argsort(visit_rank(perm)[part.impression], stable=True)
                chunks = [chunk for _, chunk in rank_batches(order, batch_size, first, shard)]
                if shard[1] > 1:  # encode only the impressions this rank's batches hold
                    table, part = _only_impressions_of(table, part, chunks)
                return encode_table(self.spec, table, self.texts), part, chunks, 0
            yield load
            first += -(-int(block_rows[ids].sum()) // batch_size)

    def _parts(self, buffers, target: str):
        """Each loaded buffer's batches, a batch's impressions in buffer order (as
        Dataset.batches has them)."""
        for encoded, part, chunks, first in buffers:
            for chunk in chunks:
                rows = part.take(chunk)
                unique, example = torch.unique(rows.impression, return_inverse=True)
                yield Batch(encoded.take(unique), example, rows.use_case), rows.targets(target), chunk + first


def _only_impressions_of(table: pa.Table, part: TaskRows, chunks: list[torch.Tensor]) -> tuple[pa.Table, TaskRows]:
    """The buffer cut to the impressions `chunks` (positions in `part`) hold, and `part` with
    those impressions renumbered into the cut (the rows of other impressions are not taken)."""
    mine = torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.long)
    impressions = torch.unique(part.impression[mine])  # (n,) sorted
    renumber = torch.full((len(table),), -1, dtype=torch.long)
    renumber[impressions] = torch.arange(len(impressions))
    renumbered = TaskRows(renumber[part.impression], part.use_case, part.label, part.oracle, part.flow)
    return table.take(impressions.numpy()), renumbered


def _shift(rows: TaskRows, offset: int) -> TaskRows:
    return TaskRows(rows.impression + offset, rows.use_case, rows.label, rows.oracle, rows.flow)


def _concat(parts: list[TaskRows]) -> TaskRows:
    oracle = None if parts[0].oracle is None else torch.cat([p.oracle for p in parts])
    return TaskRows(*(torch.cat([getattr(p, f) for p in parts]) for f in ("impression", "use_case", "label")),
                    oracle, torch.cat([p.flow for p in parts]))


def spare_cores() -> bool:
    """Whether reading and encoding on background threads would overlap the training step rather
    than compete with it: on a GPU (the CPU threads otherwise wait on it), or where this process has
    more cores than torch's intra-op threads (per local rank under torchrun).

    Where torch's threads take every core, a background thread takes cores from them: on 2 cores,
    streaming 4M impressions with reading, encoding and batching on background threads trained
    19.3k rows/s with 1.30 cores busy; the same work done between steps on the training thread,
    27.4k rows/s with 1.94 (benchmarks/results/training_scale.md)."""
    if torch.cuda.is_available():
        return True
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return len(os.sched_getaffinity(0)) // local_ranks > torch.get_num_threads()


def _prefetch_tables(loaders):
    """Read and encode the next buffer while the current one is being batched (one buffer ahead)."""
    return prefetch((load() for load in loaders), depth=1)


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Run `items` on a background thread, up to `depth` items ahead, so reading and encoding
    overlap the training step. An error there is raised here; leaving early stops the thread."""
    queue: Queue = Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failure(error))

    thread = threading.Thread(target=produce, daemon=True, name="grec-prefetch")
    thread.start()
    try:
        while True:
            try:
                item = queue.get(timeout=0.1)
            except Empty:
                if not thread.is_alive() and queue.empty():
                    raise RuntimeError("the prefetch thread ended without a result") from None
                continue
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
