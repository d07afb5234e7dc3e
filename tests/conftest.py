"""Shared fixtures: a fresh state folder per test, a small simulated dataset, random model inputs."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from grec.data.batch import Batch, Features

# `make test` runs the suite on pytest-xdist workers, one per core. Each worker, and every process
# it starts (pipeline steps, torchrun ranks, servers), gets its share of the cores: torch's default
# of one thread per core in every worker would oversubscribe the machine and slow every test.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_threads)
    torch.set_num_threads(_threads)

# The ranking services the tests start serve uncompiled: compiling every task network costs each
# worker a minute on 2 cores with Inductor's cache cold (every test's state folder is new). The
# compiled path is checked in process against the eager one (tests/serving/test_ranker.py).
os.environ.setdefault("GREC_SERVE_COMPILE", "0")

SIZES = dict(
    context_cardinalities=[12, 6, 3, 6, 24, 3, 6],
    item_cardinalities=[8, 8, 4],
    n_items=300,
    n_pages=24,
    n_context_numerical=4,
    n_item_numerical=4,
    search_dim=64,
    image_dim=32,
    text_dim=32,
)


_TEXT_CACHES: list[Path] = []  # filled by the `texts` fixture


@pytest.fixture(autouse=True)
def fresh_state(tmp_path, monkeypatch):
    """Every test gets its own GREC_HOME, empty but for the session's text vectors (MiniLM then
    encodes each text of the session's data once, not once per test)."""
    state = tmp_path / "state"
    monkeypatch.setenv("GREC_HOME", str(state))
    for name in ("FEAST_FS_YAML_FILE_PATH", "GREC_REDIS"):  # the embedded feature store, whatever the shell says
        monkeypatch.delenv(name, raising=False)
    copy_text_caches(state)
    return state


def copy_text_caches(state: Path) -> None:
    """Put the session's text vectors into a state folder: MiniLM encodes each text once a session
    (the tables of several datasets' texts merged into the one the state folder reads)."""
    if not _TEXT_CACHES:
        return
    (state / "features").mkdir(parents=True, exist_ok=True)
    shutil.copy(_merged_text_cache(tuple(_TEXT_CACHES)), state / "features" / _TEXT_CACHES[0].name)


@functools.cache
def _merged_text_cache(caches: tuple[Path, ...]) -> Path:
    if len(caches) == 1:
        return caches[0]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(path) for path in caches])
    _, first = np.unique(table.column("text_hash").to_numpy(zero_copy_only=False), return_index=True)
    merged = caches[-1].with_name(f"merged-{len(caches)}-{caches[-1].name}")
    pq.write_table(table.take(pa.array(np.sort(first))), merged)
    return merged


def random_features(n: int, seed: int = 0, seq_len: int = 20) -> Features:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, seq_len + 1, (n,), generator=g)
    pad = torch.arange(seq_len) < (seq_len - lengths)[:, None]  # right-aligned histories
    seq_items = torch.randint(2, SIZES["n_items"] + 2, (n, seq_len), generator=g).masked_fill(pad, 0)
    seq_pages = torch.randint(2, SIZES["n_pages"] + 2, (n, seq_len), generator=g).masked_fill(pad, 0)
    # a catalogue: each item's attributes (rows 0 and 1, padding and unknown: the unknown code, zeros)
    cards = torch.tensor(SIZES["item_cardinalities"])
    codes = torch.stack([torch.randint(0, k, (SIZES["n_items"] + 2,), generator=g) for k in SIZES["item_cardinalities"]], 1)
    codes[:2] = cards
    values = torch.randn(SIZES["n_items"] + 2, 4, generator=g)
    values[:2] = 0
    return Features(
        context_categorical=torch.stack([torch.randint(0, k + 1, (n,), generator=g) for k in SIZES["context_cardinalities"]], 1),
        context_numerical=torch.randn(n, 4, generator=g),
        search=torch.randn(n, 64, generator=g),
        item=torch.randint(2, SIZES["n_items"] + 2, (n,), generator=g),
        item_categorical=torch.stack([torch.randint(0, k + 1, (n,), generator=g) for k in SIZES["item_cardinalities"]], 1),
        item_numerical=torch.randn(n, 4, generator=g),
        item_image=torch.randn(n, 32, generator=g),
        item_text=torch.randn(n, 32, generator=g),
        seq_items=seq_items,
        seq_pages=seq_pages,
        flow=torch.randint(0, 3, (n,), generator=g),
        seq_item_categorical=codes[seq_items],
        seq_item_numerical=values[seq_items],
    )


def random_batch(n_examples: int = 64, rows_per_example: int = 3, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed + 1)
    example = torch.arange(n_examples).repeat_interleave(rows_per_example)
    use_case = torch.randint(0, 4, (len(example),), generator=g)
    return Batch(random_features(n_examples, seed), example, use_case)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """A small simulated storefront (about 60k impressions), written once per test session."""
    from grec.data.simulate import SimulationConfig, simulate_to

    out = tmp_path_factory.mktemp("data") / "small"
    simulate_to(out, SimulationConfig(n_impressions=60_000, seed=7))
    return out


@pytest.fixture(scope="session")
def texts(small_data, tmp_path_factory):
    """A text-embedding table holding every query and description of `small_data`."""
    from grec.data.tables import load_tables
    from grec.data.text import ENCODER_NAME, TextEmbeddingStore

    store = TextEmbeddingStore(tmp_path_factory.mktemp("texts") / f"text_embeddings-{ENCODER_NAME}.parquet")
    tables = load_tables(small_data)
    store.lookup(np.concatenate([tables["impressions"]["search_query"].unique(), tables["items"]["description"]]))
    _TEXT_CACHES.append(store.path)
    return store


# The second world (a job board: grec.data.simulate_jobs) at a size for tests, its contract drafted
# by `grec data init` with the arguments a team would pass (JOBS_INIT)
JOBS_TEST = dict(n_impressions=20_000, n_jobs=400, n_companies=60, n_seekers=1_500, seed=3)


@pytest.fixture(scope="session")
def jobs_data(tmp_path_factory):
    from grec.data.scaffold import draft_contract, write_draft
    from grec.data.simulate_jobs import JOBS_INIT, JobsConfig, simulate_jobs_to

    out = tmp_path_factory.mktemp("jobs") / "jobs"
    simulate_jobs_to(out, JobsConfig(**JOBS_TEST))
    write_draft(draft_contract(out, name="jobs", **JOBS_INIT))
    return out


@pytest.fixture(scope="session")
def jobs_dataset(jobs_data, tmp_path_factory):
    """The job board's dataset, its texts encoded once for the session (shared like `texts`)."""
    from grec.features.training_set import load_dataset
    from grec.data.text import ENCODER_NAME, TextEmbeddingStore

    store = TextEmbeddingStore(tmp_path_factory.mktemp("jobs-texts") / f"text_embeddings-{ENCODER_NAME}.parquet")
    data = load_dataset(jobs_data, texts=store)
    _TEXT_CACHES.append(store.path)
    return data


@pytest.fixture(scope="session")
def small_dataset(small_data, texts):
    from grec.features.training_set import load_dataset

    return load_dataset(small_data, texts=texts)


def simulated_training_set(folder: Path, **config) -> Path:
    """A simulated storefront under folder/data (SimulationConfig(**config)) written as a training
    set (the raw join, as `grec features training-set` lays it out) to folder/set."""
    from grec.data.split import split_masks
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.features.training_set import RAW_JOIN, open_source, write_training_set

    simulate_to(folder / "data", SimulationConfig(**config))
    source = open_source(folder / "data")
    write_training_set(folder / "set", source.frame, split_masks(source.frame, source.contract, source.split),
                       source.split, source.contract, RAW_JOIN, folder / "data" / "impressions.parquet")
    return folder / "set"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A Redis on loopback (deploy/local/services.py, as a user starts one) for this test session
    (one per xdist worker), stopped and its data removed after."""
    from deploy.local import services

    root = tmp_path_factory.mktemp("redis-service")
    try:
        yield services.start(["redis"], root)["redis"]
    finally:
        services.stop(root, remove=True)


def redis_settings(server, db: int) -> dict[str, str]:
    """The environment that points Feast at `server`'s database `db` (one per test module: Feast's
    keys are per project and entity, so two state folders must not share a database)."""
    from deploy.local import services

    settings = services.redis_settings(server)
    return settings | {"GREC_REDIS": f"{settings['GREC_REDIS']},db={db}"}
