"""The feature repository follows the data folder's contract: the storefront keeps exactly its
views; a user's own logs (other columns, no search, no histories, no item vectors) get a profile
and a catalogue view and nothing else; a source split by a column keeps its split through the
training set; the `feast` CLI on the state folder sees the same objects."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grec.data.contract import Contract, write_dataset
from grec.data.schema import CUSTOMERS, ITEMS, TaskVocabulary
from grec.features import sources
from grec.features.store import FEATURE_REPO, OnlineReader, apply, feature_store, materialize, repo_objects
from grec.features.training_set import TrainingSetError, build_training_set, open_source
from tests.data.own_logs import FEATURES, write_own_logs
from tests.data.test_contract import shop, shop_tables

OWN_TASKS = TaskVocabulary(("APP", "EMAIL", "WEB"), ("CLICK", "BUY"), {"CLICK": "clicked", "BUY": "bought"},
                           {"CLICK": None, "BUY": None})


def own_contract() -> Contract:
    return Contract.define("own-logs", FEATURES, OWN_TASKS, funnel=[("clicked", "bought")], inputs=())


@pytest.fixture
def own_data(tmp_path):
    folder = write_own_logs(tmp_path / "own", n_impressions=3000)
    (folder / "contract.json").write_text(__import__("json").dumps(own_contract().to_dict()))
    return folder


def names(objects) -> set[str]:
    return {o.name for o in objects}


def features_of(view) -> list[str]:
    return [f.name for f in view.features]


def test_the_storefront_keeps_exactly_its_views():
    objects = {o.name: o for o in repo_objects()}
    assert set(objects) == {"customer", "item", "search_query", "customer_profile", "customer_activity", "item_catalog",
                            "item_embeddings", "query_embeddings", "grec_training_v1", "grec_serving_v1"}
    assert features_of(objects["customer_profile"]) == [c.name for c in CUSTOMERS.columns[2:]]
    assert features_of(objects["item_catalog"]) == [c.name for c in ITEMS.columns[2:] if c.name != "image_embedding"]
    assert features_of(objects["customer_activity"]) == ["viewed_item_ids", "visited_page_ids"]
    assert features_of(objects["item_embeddings"]) == ["image_embedding", "text_embedding"]
    assert {name: objects[name].ttl for name in ("customer_profile", "customer_activity", "item_catalog")} == {
        "customer_profile": timedelta(days=180), "customer_activity": timedelta(days=30), "item_catalog": timedelta(0)}
    services = {name: [p.name for p in objects[name].feature_view_projections] for name in ("grec_training_v1", "grec_serving_v1")}
    assert services == {"grec_training_v1": ["customer_profile", "item_catalog"],
                        "grec_serving_v1": ["customer_profile", "customer_activity", "item_catalog", "item_embeddings",
                                            "query_embeddings"]}


def test_own_logs_get_views_from_their_contract(own_data):
    applied = apply(own_data)
    assert set(applied["objects"]) == {"customer", "item", "customer_profile", "item_catalog", "grec_training_v1",
                                       "grec_serving_v1"}
    store = feature_store()
    assert features_of(store.get_feature_view("customer_profile")) == ["segment", "country", "spend"]
    assert features_of(store.get_feature_view("item_catalog")) == ["genre", "price_eur"]
    materialize(pd.Timestamp("2026-04-01", tz="UTC"))
    online = OnlineReader().read(7, [0, 3])
    customers = pd.read_parquet(own_data / "customers.parquet").set_index("customer_id")
    assert online.customer["segment"] == customers.loc[7, "segment"]
    assert list(online.items["genre"]) == list(pd.read_parquet(own_data / "items.parquet").set_index("item_id").loc[[0, 3], "genre"])

    manifest = build_training_set(own_data)
    source = open_source(settings_training_set(own_data))
    assert source.contract == own_contract() and manifest.contract == "own-logs"
    assert sum(manifest.rows.values()) == 3000 and manifest.split_column is None
    frame = source.frame
    assert (frame["search_query"] == "").all() and frame["viewed_item_ids"].map(len).eq(0).all()
    assert frame["image_embedding"].map(len).eq(1).all() and (frame["description"] == "").all()
    assert {"segment", "country", "spend", "genre", "price_eur", "slot", "clicked", "bought"} <= set(frame.columns)
    data = source.dataset()
    assert data.spec.tasks == OWN_TASKS and data.spec.impression_context == ["slot"] and data.spec.inputs == []


def settings_training_set(data_dir: Path) -> Path:
    from grec import settings

    return settings.training_sets_dir() / data_dir.name


def test_a_split_column_survives_the_training_set(tmp_path):
    write_dataset(shop_tables(400), tmp_path / "shop", shop())
    apply(tmp_path / "shop")
    materialize(pd.Timestamp("2021-01-01", tz="UTC"))
    manifest = build_training_set(tmp_path / "shop", tmp_path / "set")
    split = pd.read_parquet(tmp_path / "shop" / "impressions.parquet")["split"].value_counts().to_dict()
    assert manifest.rows == {name: split[name] for name in ("train", "valid", "test")} and manifest.split_column == "split"
    held_out = open_source(tmp_path / "set", splits=("test",))
    assert (held_out.frame["split"] == "test").all() and "'split' column says test" in held_out.test_rows()


def test_another_dataset_replaces_the_views_and_refuses_a_stale_store(own_data, small_data, texts):
    apply(small_data, texts)
    assert "customer_activity" in names(feature_store().list_feature_views())
    apply(own_data)
    store = feature_store()
    assert names(store.list_feature_views()) == {"customer_profile", "item_catalog"}
    assert "search_query" not in names(store.list_entities())
    assert not sources.source_path("customer_activity").exists()  # the storefront's sources went with its views
    with pytest.raises(TrainingSetError, match="holds 'own-logs' features.*grec features apply --data"):
        build_training_set(small_data)


def test_the_feast_cli_on_the_state_folder_sees_the_same_views(own_data):
    apply(own_data)
    env = {**os.environ, "GREC_HOME": os.environ["GREC_HOME"]}
    feast = Path(sys.executable).with_name("feast")
    done = subprocess.run([str(feast), "-c", str(FEATURE_REPO), "feature-views", "list"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "customer_profile" in done.stdout and "item_catalog" in done.stdout
    assert "customer_activity" not in done.stdout and "query_embeddings" not in done.stdout
    assert np.all([line.split()[0] in {"NAME", "customer_profile", "item_catalog"}
                   for line in done.stdout.splitlines() if line.strip()])
