"""The Feast repository on a fresh state folder: apply, materialize, online reads (the SQLite
store and Redis), training sets (DuckDB, the file store, Spark)."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from grec.data.tables import join_tables, load_tables
from grec.data.contract import to_arrow, write_tables
from grec.data.simulate import SimulationConfig, simulate_to
from grec.data.schema import CUSTOMERS
from grec.features import sources
from grec.features.store import FEATURE_REPO, OnlineReader, apply, feature_store, materialize, stop_spark
from grec.data.manifest import read_manifest
from grec.features.training_set import MAX_LOST_SHARE, TrainingSetError, build_training_set, load_training_set
from grec.io import write_parquet
from tests.conftest import redis_settings

PLANTED_PLAN = 99  # a plan code no real snapshot has


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small storefront where one busy customer gets a new profile snapshot mid-window."""
    data = tmp_path_factory.mktemp("feature-data") / "planted"
    simulate_to(data, SimulationConfig(n_impressions=15_000, seed=3))
    tables = load_tables(data)
    imp = tables["impressions"]
    customer = int(imp["customer_id"].value_counts().index[0])
    times = imp.loc[imp["customer_id"] == customer, "event_timestamp"].sort_values()
    planted_at = times.iloc[len(times) // 2] - pd.Timedelta(seconds=1)
    snapshot = tables["customers"][tables["customers"]["customer_id"] == customer].copy()
    snapshot["updated_at"], snapshot["plan_type"] = planted_at, PLANTED_PLAN
    customers = pd.concat([tables["customers"], snapshot], ignore_index=True)
    write_parquet(data / CUSTOMERS.file, to_arrow(customers, CUSTOMERS))
    return data, customer, planted_at


@pytest.fixture(scope="module")
def store_home(world, tmp_path_factory):
    """One applied and materialized store for the module (applying takes a while)."""
    home = tmp_path_factory.mktemp("feature-state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        applied = apply(world[0])
        end = pd.Timestamp("2026-08-01", tz="UTC")
        materialize(end)
        manifest = build_training_set(world[0])
    return home, applied, end, manifest


def copy_text_vectors(source_home, home) -> None:
    """A state folder of its own starts with the module store's text vectors (saves encoding them again)."""
    (home / "features").mkdir(parents=True, exist_ok=True)
    for cache in (source_home / "features").glob("text_embeddings-*.parquet"):
        shutil.copy(cache, home / "features" / cache.name)


@pytest.fixture
def in_store(store_home, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(store_home[0]))
    return store_home


@pytest.fixture(scope="module")
def redis_home(world, store_home, redis_server, tmp_path_factory):
    """The same repository applied and materialized with the Redis configuration, in a state
    folder of its own (the module store's text vectors copied, to save encoding them again)."""
    home = tmp_path_factory.mktemp("feature-state-redis")
    copy_text_vectors(store_home[0], home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        for name, value in redis_settings(redis_server, db=1).items():
            mp.setenv(name, value)
        applied = apply(world[0])
        materialized = materialize(store_home[2])
    return home, applied, store_home[2], materialized


SPARK_YAML = FEATURE_REPO / "feature_store.spark.yaml"


@pytest.fixture(scope="module")
def spark():
    """The repository's Spark configuration (local mode), with Java installed if missing; the
    Spark JVM this module starts is stopped after it (it keeps about 400 MB otherwise)."""
    from deploy.local import services

    services.ensure_java()
    yield SPARK_YAML
    stop_spark()


@pytest.fixture(scope="module")
def spark_home(world, store_home, spark, tmp_path_factory):
    """The same repository with Spark as the offline store, in a state folder of its own: applied,
    materialized into its SQLite online store and a training set built, each through Spark."""
    home = tmp_path_factory.mktemp("feature-state-spark")
    copy_text_vectors(store_home[0], home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.setenv("FEAST_FS_YAML_FILE_PATH", str(spark))
        applied = apply(world[0])
        materialized = materialize(store_home[2])
        manifest = build_training_set(world[0])
    return home, applied, materialized, manifest


@pytest.fixture(params=["sqlite", "redis", "spark"])
def online(request, monkeypatch):
    """Each online-store test once per backend: (backend, state folder, materialized up to);
    'spark': the SQLite store materialized by the Spark offline store."""
    if request.param == "sqlite":
        home, end = request.getfixturevalue("store_home")[0], request.getfixturevalue("store_home")[2]
    elif request.param == "spark":
        home, end = request.getfixturevalue("spark_home")[0], request.getfixturevalue("store_home")[2]
        monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(SPARK_YAML))
    else:
        home, _, end, _ = request.getfixturevalue("redis_home")
        for name, value in redis_settings(request.getfixturevalue("redis_server"), db=1).items():
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("GREC_HOME", str(home))
    return request.param, home, end


def test_apply_registers_every_object_under_the_state_folder(in_store):
    home, applied, _, _ = in_store
    assert {"customer", "item", "customer_profile", "customer_activity", "item_catalog", "item_embeddings",
            "query_embeddings", "grec_training_v1", "grec_serving_v1"} <= set(applied["objects"])
    assert (home / "features" / "registry.db").exists() and (home / "features" / "online_store.db").exists()
    for name in sources.source_tables():
        assert sources.source_path(name).is_relative_to(home)
    # Nothing written into the source tree.
    assert sorted(p.name for p in FEATURE_REPO.iterdir() if p.name != "__pycache__") == [
        ".feastignore", "definitions.py", "feature_store.redis.yaml", "feature_store.spark.yaml", "feature_store.yaml"]


def test_the_redis_configuration_keeps_the_online_values_in_redis(redis_home, redis_server, monkeypatch):
    import redis

    home, applied, _, materialized = redis_home
    monkeypatch.setenv("GREC_HOME", str(home))
    assert materialized["online_store"] == f"redis {redis_server.url}"
    assert (home / "features" / "registry.db").exists() and not (home / "features" / "online_store.db").exists()
    keys = redis.Redis(host="127.0.0.1", port=redis_server.port, db=1).dbsize()
    customers, items = (pd.read_parquet(sources.source_path(n)) for n in ("customer_profile", "item_catalog"))
    # one hash per entity key (customers, items; the query view's keys besides)
    assert keys >= customers["customer_id"].nunique() + items["item_id"].nunique()


def test_a_configuration_whose_connection_is_not_set_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(FEATURE_REPO / "feature_store.redis.yaml"))
    with pytest.raises(ValueError, match="feature_store.redis.yaml needs GREC_REDIS set"):
        feature_store()
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", "/nowhere/feature_store.yaml")
    with pytest.raises(FileNotFoundError, match="FEAST_FS_YAML_FILE_PATH=/nowhere/feature_store.yaml: no such file"):
        feature_store()


def _latest(frame, key, stamp, value, at):
    rows = frame[(frame[key] == value) & (frame[stamp] <= at)]
    return rows.sort_values(stamp).iloc[-1]


def test_online_features_equal_the_latest_offline_values(online, world):
    _, _, end = online
    customer, planted_at = world[1], world[2]
    profile = pd.read_parquet(sources.source_path("customer_profile"))
    activity = pd.read_parquet(sources.source_path("customer_activity"))
    catalog = pd.read_parquet(sources.source_path("item_catalog"))
    vectors = pd.read_parquet(sources.source_path("item_embeddings"))
    reader = OnlineReader()
    for cid in (customer, int(activity["customer_id"].iloc[0]), int(activity["customer_id"].iloc[-1])):
        online = reader.read(cid, [0, 5, 7])
        want = _latest(profile, "customer_id", "updated_at", cid, end)
        for column in sources.feature_columns(sources.source_tables()["customer_profile"]):
            assert online.customer[column.name] == pytest.approx(want[column.name]), (cid, column.name)
        recent = _latest(activity, "customer_id", "event_timestamp", cid, end)
        assert list(online.customer["viewed_item_ids"]) == list(recent["viewed_item_ids"])
        assert list(online.customer["visited_page_ids"]) == list(recent["visited_page_ids"])
    busy = reader.read(customer, list(range(50)))
    assert planted_at < end and busy.customer["plan_type"] == PLANTED_PLAN  # the planted snapshot is the latest
    items = busy.items
    assert list(items["item_id"]) == list(range(50))
    for _, row in items.iterrows():
        cat = _latest(catalog, "item_id", "updated_at", row["item_id"], end)
        assert row["price"] == pytest.approx(cat["price"]) and row["description"] == cat["description"]
        vec = _latest(vectors, "item_id", "updated_at", row["item_id"], end)
        assert np.allclose(row["text_embedding"], vec["text_embedding"])
        assert np.allclose(row["image_embedding"], vec["image_embedding"])


def test_training_set_uses_no_value_from_after_its_impression(in_store, world):
    data, customer, planted_at = world
    frame = pd.concat([pd.read_parquet(in_store[0] / "training_sets" / data.name / f"{s}.parquet")
                       for s in ("train", "valid", "test")])
    mine = frame[frame["customer_id"] == customer]
    before, after = mine[mine["event_timestamp"] < planted_at], mine[mine["event_timestamp"] >= planted_at]
    assert len(before) and len(after)
    assert (before["plan_type"] != PLANTED_PLAN).all()  # the future snapshot never leaks backwards
    assert (after["plan_type"] == PLANTED_PLAN).all()
    assert not (frame.loc[frame["customer_id"] != customer, "plan_type"] == PLANTED_PLAN).any()


def test_training_set_has_one_row_per_impression_and_matches_the_raw_join(in_store, world):
    data, customer, _ = world
    manifest = in_store[3]
    tables = load_tables(data)
    assert sum(manifest.rows.values()) == len(tables["impressions"])
    frame = pd.concat([pd.read_parquet(in_store[0] / "training_sets" / data.name / f"{s}.parquet")
                       for s in ("train", "valid", "test")]).reset_index(drop=True)
    tables["customers"] = tables["customers"].drop_duplicates("customer_id")  # the raw join takes one snapshot
    raw = join_tables(tables).sort_values("impression_id").reset_index(drop=True)
    others = (frame["customer_id"] != customer).to_numpy()
    assert list(frame["impression_id"]) == list(raw["impression_id"])
    for column in raw.columns:
        a, b = frame.loc[others, column].to_numpy(), raw.loc[others, column].to_numpy()
        if a.dtype == object and len(a) and not isinstance(a[0], str):
            assert all(np.array_equal(x, y) for x, y in zip(a, b)), column
        else:
            assert (a == b).all(), column


def test_a_training_set_loads_like_the_raw_tables(in_store, world):
    data = load_training_set(in_store[0] / "training_sets" / world[0].name)
    impressions = load_tables(world[0])["impressions"]
    masks = data.split.masks(impressions["event_timestamp"])
    for split, mask in masks.items():  # CTR, ATC, CTCVR rows per impression; CVR rows per click
        assert len(data.rows[split]) == 3 * mask.sum() + impressions.loc[mask, "click"].sum()
    assert data.spec.search_dim == 384 and data.features.item_text.shape[1] == 384


def test_the_spark_configuration_reads_spark_sources_and_keeps_its_state_in_the_state_folder(spark_home, spark, monkeypatch):
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    home = spark_home[0]
    monkeypatch.setenv("GREC_HOME", str(home))
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(spark))
    store = feature_store()
    assert store.config.offline_store.type == "spark"
    assert store.config.offline_store.spark_conf["spark.local.dir"] == str(home / "features" / "spark-scratch")
    views = store.list_feature_views()
    assert views and all(isinstance(v.batch_source, SparkSource) for v in views)
    assert {v.batch_source.path for v in views} == {str(sources.source_path(v.name)) for v in views}
    assert spark_home[2]["online_store"] == f"sqlite {home / 'features' / 'online_store.db'}"


def test_spark_builds_the_training_set_duckdb_builds(in_store, spark_home, world):
    assert spark_home[3].rows == in_store[3].rows
    for split in ("train", "valid", "test"):
        duck_set = pd.read_parquet(in_store[0] / "training_sets" / world[0].name / f"{split}.parquet")
        spark_set = pd.read_parquet(spark_home[0] / "training_sets" / world[0].name / f"{split}.parquet")
        pd.testing.assert_frame_equal(spark_set, duck_set)


def test_without_java_the_spark_configuration_says_what_to_install(spark_home, spark, world, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(spark_home[0]))
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(spark))
    monkeypatch.setenv("PATH", "/nowhere")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert OnlineReader().items([0])["item_id"].tolist() == [0]  # reading the online store needs no Java
    for offline_work in (lambda: materialize(pd.Timestamp("2026-08-01", tz="UTC")),
                         lambda: build_training_set(world[0], spark_home[0] / "no-java-set")):
        with pytest.raises(RuntimeError, match="needs a Java 17 or 21 runtime .* default-jre-headless"):
            offline_work()


def use_offline_store(monkeypatch, folder, store: str) -> None:
    """The repository's configuration with another offline store (`duckdb`, the default; `file`:
    dask; `spark`: the repository's own Spark configuration, feature_store.spark.yaml)."""
    if store == "spark":
        monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(SPARK_YAML))
        return
    text = (FEATURE_REPO / "feature_store.yaml").read_text()
    assert re.search(r"offline_store:\n  type: duckdb\b", text)
    path = folder / f"feature_store.{store}.yaml"
    path.write_text(re.sub(r"offline_store:\n  type: \w+", f"offline_store:\n  type: {store}", text))
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(path))


def test_the_file_store_builds_the_training_set_duckdb_builds(in_store, world, tmp_path, monkeypatch):
    use_offline_store(monkeypatch, tmp_path, "file")
    manifest = build_training_set(world[0], tmp_path / "file-set")
    assert manifest.rows == in_store[3].rows
    for split in ("train", "valid", "test"):
        duck_set = pd.read_parquet(in_store[0] / "training_sets" / world[0].name / f"{split}.parquet")
        file_set = pd.read_parquet(tmp_path / "file-set" / f"{split}.parquet")
        pd.testing.assert_frame_equal(file_set, duck_set, check_dtype=False)


@pytest.mark.parametrize("offline", ["file", "duckdb", "spark"])
def test_rows_dropped_by_a_ttl_are_detected_and_explained(store_home, world, fresh_state, tmp_path, monkeypatch, offline,
                                                          request):
    # dask drops such a row, DuckDB and Spark keep it with nulls: on each, the builder stops past the
    # policy's share, naming the view, and below it leaves the rows out, named in the manifest.
    if offline == "spark":
        request.getfixturevalue("spark")
    use_offline_store(monkeypatch, tmp_path, offline)
    copy_text_vectors(store_home[0], fresh_state)
    data = tmp_path / "stale"
    data.mkdir()
    tables = load_tables(world[0])
    customer = world[1]
    tables["customers"] = tables["customers"][tables["customers"]["customer_id"] != customer]
    stale = load_tables(world[0])["customers"].query("customer_id == @customer").iloc[:1].copy()
    stale["updated_at"] = pd.Timestamp("2025-01-01", tz="UTC")  # far beyond the 180-day TTL
    tables["customers"] = pd.concat([tables["customers"], stale], ignore_index=True)
    tables["customers"]["updated_at"] = pd.to_datetime(tables["customers"]["updated_at"], utc=True)
    write_tables(tables, data)
    apply(data)
    impressions = tables["impressions"]
    theirs = impressions[impressions["customer_id"] == customer]
    share = len(theirs) / len(impressions)
    assert share > MAX_LOST_SHARE  # the busiest customer: past the default policy
    with pytest.raises(TrainingSetError, match=rf"no values for {len(theirs)} of {len(impressions):,} impressions "
                       rf"\({share:.2%}; the policy, max_lost_share, leaves out at most 0.10%\).*customer_profile: no value within its TTL "
                       rf"of 180 days, 0:00:00: {len(theirs)} rows \(.*; e.g. customer_id={customer} at "):
        build_training_set(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    # Under a looser policy the rows are left out, and named in the manifest.
    manifest = build_training_set(data, tmp_path / "out", max_lost_share=2 * share)
    assert sum(manifest.rows.values()) == len(impressions) - len(theirs)
    lost = manifest.left_out["customer_profile: no value within its TTL of 180 days, 0:00:00"]
    assert lost["rows"] == len(theirs) and lost["first"] == str(theirs["event_timestamp"].min())
    assert read_manifest(tmp_path / "out").left_out == manifest.left_out
    kept = pd.concat([pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "valid", "test")])
    assert customer not in set(kept["customer_id"]) and kept["plan_type"].notna().all()


def test_the_cluster_manifests_select_the_tested_redis_configuration():
    """deploy/k8s/ranker.yaml points the ranking service at the Service of deploy/k8s/redis.yaml
    through the configuration tested above (the Bento carries feature_repo/*.yaml)."""
    import yaml

    root = FEATURE_REPO.parent / "deploy"
    redis_objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all((root / "k8s" / "redis.yaml").read_text())}
    ranker = next(o for o in yaml.safe_load_all((root / "k8s" / "ranker.yaml").read_text()) if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in ranker["spec"]["template"]["spec"]["containers"][0]["env"]}  # valueFrom: None
    assert env["FEAST_FS_YAML_FILE_PATH"].endswith("/feature_repo/feature_store.redis.yaml")
    port = redis_objects[("Service", "grec-redis")]["spec"]["ports"][0]["port"]
    assert env["GREC_REDIS"] == f"grec-redis:{port}"
    assert "feature_repo/*.yaml" in yaml.safe_load((root / "bentofile.yaml").read_text())["include"]
