"""A dataset's contract.json: written beside its tables, read back equal, the storefront's contract
where there is none, bad files refused naming the field, and tables checked against it."""

import json

import numpy as np
import pandas as pd
import pytest

from grec.data import schema
from grec.data.contract import CONTRACT_FILE, TELECOM, Contract, read_contract, write_dataset
from grec.data.spec import FeatureSpec
from grec.data.tables import load_tables
from grec.data.real import placeholder_items
from grec.data.schema import SchemaError, TaskVocabulary

TASKS = TaskVocabulary(("WEB", "APP"), ("CTR", "CTCVR"), {"CTR": "click", "CTCVR": "buy"}, {"CTR": None, "CTCVR": None})
STAMP = pd.Timestamp("2020-01-01", tz="UTC")


def shop() -> Contract:
    return Contract.define("shop", {"customers": {"categorical": ["segment"], "numerical": ["spend"]},
                                    "impressions": {"categorical": ["slot"]},
                                    "items": {"categorical": ["item_kind"], "numerical": ["item_size"]}},
                           TASKS, funnel=[("click", "buy")], split="split", source="a test", inputs=())


def shop_tables(n: int = 40) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    click = (rng.random(n) < 0.3).astype(np.int8)
    return {
        "customers": pd.DataFrame({"customer_id": np.arange(4), "updated_at": STAMP, "segment": [0, 1, 2, 1],
                                   "spend": np.float32([1, 2, 3, 4])}),
        "items": placeholder_items(STAMP),
        "impressions": pd.DataFrame({
            "impression_id": np.arange(n), "event_timestamp": STAMP, "customer_id": np.arange(n) % 4, "item_id": 0,
            "flow": np.where(np.arange(n) % 2, "WEB", "APP"), "slot": np.arange(n) % 3,
            "click": click, "buy": click & (rng.random(n) < 0.5), "split": np.array(["train", "valid", "test", "train"] * (n // 4))}),
    }


def test_contract_round_trips_and_feeds_the_feature_spec(tmp_path):
    contract = shop()
    paths = write_dataset(shop_tables(), tmp_path / "shop", contract)
    assert set(paths) == {"customers", "items", "impressions", "contract"}
    assert read_contract(tmp_path / "shop") == contract
    tables = load_tables(tmp_path / "shop")
    # the contract's columns, and the constant ones of the inputs the source has not (no search, no histories)
    assert set(tables["impressions"].columns) == {*contract.tables["impressions"].names(), "search_query",
                                                  "viewed_item_ids", "visited_page_ids"}
    assert (tables["impressions"]["search_query"] == "").all() and tables["items"]["image_embedding"].map(len).eq(1).all()
    columns = contract.feature_spec_columns()
    assert columns["context_categorical"] == ["segment", "slot"] and columns["context_numerical"] == ["spend"]
    assert columns["tasks"] == TASKS
    # the storefront: no contract.json, the schema's tables, the FeatureSpec defaults
    assert read_contract(tmp_path) is TELECOM and TELECOM.tables == schema.TABLES
    defaults = FeatureSpec()
    assert TELECOM.feature_spec_columns() == {k: getattr(defaults, k) for k in TELECOM.feature_spec_columns()}


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    parent = tmp_path / "datasets"  # a folder of its own: tmp_path also holds the test's state folder
    write_dataset(shop_tables(), parent / "shop", shop())
    broken = shop_tables()
    broken["impressions"] = broken["impressions"].drop(columns="slot")
    with pytest.raises(SchemaError, match="impressions.parquet: missing columns \\['slot'\\]"):
        write_dataset(broken, parent / "shop", shop())
    assert len(load_tables(parent / "shop")["impressions"]) == 40  # the old folder, intact
    assert [p.name for p in parent.iterdir()] == ["shop"]  # no half-written folder left beside it


def test_tables_are_checked_against_the_contract(tmp_path):
    write_dataset(shop_tables(), tmp_path / "shop", shop())
    contract = json.loads((tmp_path / "shop" / CONTRACT_FILE).read_text())
    contract["features"]["customers"]["numerical"].append("tenure")
    (tmp_path / "shop" / CONTRACT_FILE).write_text(json.dumps(contract))
    with pytest.raises(SchemaError, match="customers.parquet: does not match the 'customers' schema: missing column 'tenure'"):
        load_tables(tmp_path / "shop")


def test_another_datasets_core_columns_are_described_in_its_own_words(tmp_path):
    write_dataset(shop_tables(), tmp_path / "shop", shop())
    table = pd.read_parquet(tmp_path / "shop" / "impressions.parquet").drop(columns=["flow"])
    table.to_parquet(tmp_path / "shop" / "impressions.parquet", index=False)
    with pytest.raises(SchemaError) as refused:
        load_tables(tmp_path / "shop")
    assert "missing column 'flow' (expected string: the flow, the first token of each task" in str(refused.value)
    assert "AAL" not in str(refused.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(owner="me"), "unknown fields \\['owner'\\]"),
    (lambda d: d.pop("tasks"), "missing fields \\['tasks'\\]"),
    (lambda d: d.update(version=2), "field 'version' is 2"),
    (lambda d: d["features"].update(users={"categorical": []}), "field 'features.users'"),
    (lambda d: d.update(funnel=[["click", "view"]]), "funnel pair \\[click, view\\]"),
    (lambda d: d["features"]["customers"].update(numerical=[]), "no context numerical feature"),
    (lambda d: d["features"]["impressions"].update(categorical=["segment"]), "columns \\['segment'\\] appear twice"),
    (lambda d: d["tasks"]["labels"].pop("CTCVR"), "use case 'CTCVR' names no label column"),
])
def test_bad_contract_files_are_refused_naming_the_field(tmp_path, change, message):
    d = shop().to_dict()
    change(d)
    (tmp_path / CONTRACT_FILE).write_text(json.dumps(d))
    with pytest.raises(SchemaError, match=f"{CONTRACT_FILE}: .*{message}"):
        read_contract(tmp_path)


def test_the_feature_store_sources_follow_the_contract(tmp_path):
    """Another dataset's folder gets its own source tables: its customer and item columns, no
    activity, item vectors or query vectors for inputs it does not have, and its contract beside
    them (what feature_repo/definitions.py declares the views from)."""
    from grec.features.sources import active_contract, build_sources, source_tables, sources_dir

    write_dataset(shop_tables(), tmp_path / "shop", shop())
    paths = build_sources(tmp_path / "shop")
    assert set(paths) == set(source_tables(shop())) == {"customer_profile", "item_catalog"}
    assert active_contract() == shop() and (sources_dir() / CONTRACT_FILE).exists()
    profile = pd.read_parquet(paths["customer_profile"])
    assert list(profile.columns) == ["customer_id", "updated_at", "segment", "spend"]
