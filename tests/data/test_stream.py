"""Streaming from parquet (grec.data.stream) against the in-memory path: the same spec, batches
and model under one seed; errors by name."""

import numpy as np
import pytest
import torch

from grec.data.split import split_masks
from grec.data import stream as stream_module
from grec.data.order import BLOCK_ROWS, epoch_order, rank_batches
from grec.data.schema import SchemaError
from grec.data.stream import StreamingDataset, prefetch
from grec.evaluate import predict
from grec.features.training_set import RAW_JOIN, open_source, write_training_set
from grec.model.checkpoint import build_model, model_config
from grec.model.inputs import InputConfig
from grec.train import TrainConfig, fit


@pytest.fixture(scope="module")
def training_set(small_data, tmp_path_factory):
    """small_data as a training-set folder (train / valid / test parquet in BLOCK_ROWS row groups)."""
    source = open_source(small_data)
    masks = split_masks(source.frame, source.contract, source.split)
    out = tmp_path_factory.mktemp("sets") / "small"
    write_training_set(out, source.frame, masks, source.split, source.contract, RAW_JOIN, small_data / "impressions.parquet")
    return out


@pytest.fixture(scope="module")
def both(training_set, texts):
    return open_source(training_set).dataset(texts=texts), StreamingDataset(training_set, texts=texts)


def test_the_split_is_read_in_blocks_of_block_rows(both):
    memory, stream = both
    sizes = stream.splits["train"].sizes
    assert len(sizes) >= 3 and set(sizes[:-1]) == {BLOCK_ROWS}  # several blocks to shuffle
    assert sum(sizes) == int((memory.rows["train"].impression.unique()).numel())


def test_the_spec_fitted_block_by_block_is_the_whole_splits(both):
    memory, stream = both
    assert stream.spec == memory.spec


def test_held_rows_are_the_in_memory_rows(both):
    memory, stream = both
    for name in ("valid", "test"):
        a, b = memory.rows[name], stream.rows[name]
        order_a = torch.argsort(a.impression * 10 + a.use_case)
        order_b = torch.argsort(b.impression * 10 + b.use_case)
        for field in ("use_case", "label", "oracle", "flow"):
            assert torch.equal(getattr(a, field)[order_a], getattr(b, field)[order_b]), (name, field)
    assert len(stream.rows["train"]) == len(memory.rows["train"])


def assert_same_batches(a, b):
    (a, ta, _), (b, tb, _) = a, b
    assert torch.equal(a.example, b.example) and torch.equal(a.use_case, b.use_case) and torch.equal(ta, tb)
    for field in a.features.__dataclass_fields__:
        assert torch.equal(getattr(a.features, field), getattr(b.features, field)), field


@pytest.mark.parametrize("background", [True, False], ids=["background-threads", "training-thread"])
def test_an_epoch_streams_the_batches_the_in_memory_path_makes(both, background, monkeypatch):
    monkeypatch.setattr(stream_module, "spare_cores", lambda: background)
    memory, stream = both
    pairs = zip(memory.batches(memory.rows["train"], 1000, torch.Generator().manual_seed(3), buffer_blocks=2),
                stream.batches(stream.rows["train"], 1000, torch.Generator().manual_seed(3), buffer_blocks=2),
                strict=True)
    n = 0
    for a, b in pairs:
        assert_same_batches(a, b)
        n += len(a[1])
    assert n == len(memory.rows["train"])


def test_a_rank_gets_every_ranks_th_batch_of_the_epoch_on_both_paths(both):
    """Data parallel: rank r of 3 makes batches r, r+3, ... of the one-process epoch; streamed, it
    encodes only the impressions of those batches, and they are the same tensors."""
    memory, stream = both
    epoch = list(memory.batches(memory.rows["train"], 700, torch.Generator().manual_seed(5), buffer_blocks=2))
    assert len(epoch) > 6
    for rank in range(3):
        for data in (memory, stream):
            mine = list(data.batches(data.rows["train"], 700, torch.Generator().manual_seed(5), buffer_blocks=2,
                                     shard=(rank, 3)))
            assert len(mine) == len(epoch[rank::3])
            for a, b in zip(epoch[rank::3], mine):
                assert_same_batches(a, b)
    assert [(i, c.tolist()) for i, c in rank_batches(torch.arange(10), 3, 5, (1, 2))] == [(5, [0, 1, 2]), (7, [6, 7, 8])]


def test_buffers_visit_every_block_once_in_a_seeded_order():
    sizes = [4, 4, 4, 4, 2]
    first = [(ids, perm.tolist()) for ids, perm in epoch_order(sizes, 2, torch.Generator().manual_seed(0))]
    again = [(ids, perm.tolist()) for ids, perm in epoch_order(sizes, 2, torch.Generator().manual_seed(0))]
    assert first == again
    assert sorted(b for ids, _ in first for b in ids) == list(range(5))
    assert all(sorted(perm) == list(range(sum(sizes[b] for b in ids))) for ids, perm in first)
    other = [ids for ids, _ in epoch_order(sizes, 2, torch.Generator().manual_seed(1))]
    assert other != [ids for ids, _ in first]


def test_streaming_trains_the_model_the_in_memory_path_trains(both):
    memory, stream = both
    config = TrainConfig(epochs=1, batch_size=4096, shuffle_buffer=2, progress=False)
    nets, histories = [], []
    for data in (memory, stream):
        torch.manual_seed(0)
        net = build_model(model_config("grec", InputConfig.sizes_from(data.spec), d_model=16))
        histories.append(fit(net, data, config).history)
        nets.append(net)
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        assert torch.equal(a, b), name
    assert [e["valid_loss"] for e in histories[0]] == pytest.approx([e["valid_loss"] for e in histories[1]], abs=1e-6)
    # scores come back in the order of each path's own rows
    test_a, test_b = (predict(nets[i], d, d.rows["test"]) for i, d in enumerate((memory, stream)))
    key_a = (memory.rows["test"].impression - memory.rows["test"].impression.min()) * 10 + memory.rows["test"].use_case
    key_b = stream.rows["test"].impression * 10 + stream.rows["test"].use_case
    np.testing.assert_allclose(test_a[torch.argsort(key_a).numpy()], test_b[torch.argsort(key_b).numpy()], atol=1e-6)


def test_a_streamed_dataset_scores_whole_splits_only(both):
    _, stream = both
    with pytest.raises(SchemaError, match="whole splits"):
        next(stream.batches(stream.rows["test"].take(torch.arange(10)), 100))


def test_an_unreadable_split_is_named(training_set, tmp_path, texts):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(training_set, broken)
    data = (broken / "valid.parquet").read_bytes()
    (broken / "valid.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(SchemaError, match="valid.parquet: not readable as parquet"):
        StreamingDataset(broken, texts=texts)


def test_prefetch_hands_on_items_in_order_and_raises_the_producers_error():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad row 7")

    items = prefetch(failing(), depth=2)
    assert next(items) == 1
    with pytest.raises(ValueError, match="bad row 7"):
        next(items)


def test_leaving_early_stops_the_prefetch_thread():
    import threading

    items = prefetch(iter(range(10_000)), depth=2)
    assert next(items) == 0
    items.close()
    assert not any(t.name == "grec-prefetch" for t in threading.enumerate())


def test_the_drift_sample_and_the_newest_rows_are_the_same_read_from_parquet(training_set):
    import pandas as pd

    lazy, loaded = open_source(training_set), open_source(training_set)
    loaded.frame  # noqa: B018 (read whole, as the in-memory path does)
    pd.testing.assert_frame_equal(lazy.training_sample(500, seed=3), loaded.training_sample(500, seed=3))
    pd.testing.assert_frame_equal(lazy.newest_rows(40), loaded.newest_rows(40))
    assert "frame" not in lazy.__dict__  # neither read the whole set


def test_the_memory_budget_reads_units_and_names_a_bad_value(monkeypatch):
    from grec import settings

    monkeypatch.setenv("GREC_MEMORY_BUDGET", "1.5G")
    assert settings.memory_budget() == int(1.5 * 2**30)
    monkeypatch.setenv("GREC_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="GREC_MEMORY_BUDGET='lots'"):
        settings.memory_budget()
    monkeypatch.delenv("GREC_MEMORY_BUDGET")
    assert settings.memory_budget() > 2**28


def test_the_budget_picks_the_path(training_set, texts, monkeypatch):
    from grec.data.dataset import Dataset

    monkeypatch.setenv("GREC_MEMORY_BUDGET", "1M")
    assert isinstance(open_source(training_set).dataset(texts=texts), StreamingDataset)
    monkeypatch.setenv("GREC_MEMORY_BUDGET", "100G")
    assert isinstance(open_source(training_set).dataset(texts=texts), Dataset)


def test_encoding_from_arrow_gives_the_frames_tensors_and_names_bad_rows(both, training_set, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from grec.data.encode_table import encode_table

    _, stream = both
    table = pq.read_table(training_set / "valid.parquet").slice(0, 300)
    expected = stream.spec.encode(table.to_pandas(), texts)
    got = encode_table(stream.spec, table, texts).take(torch.arange(300))
    for field in expected.__dataclass_fields__:
        assert torch.equal(getattr(expected, field), getattr(got, field)), field
    flows = table.column("flow").to_pylist()
    flows[7] = "KIOSK"
    with pytest.raises(SchemaError, match="unknown flow 'KIOSK' at row 7"):
        encode_table(stream.spec, table.set_column(table.schema.get_field_index("flow"), "flow", pa.array(flows)), texts)
    images = table.column("image_embedding").to_pylist()
    images[3] = images[3][:-1]
    bad = table.set_column(table.schema.get_field_index("image_embedding"), "image_embedding",
                           pa.array(images, table.schema.field("image_embedding").type))
    with pytest.raises(SchemaError, match="'image_embedding': row 3 has length"):
        encode_table(stream.spec, bad, texts)
