"""Each corruption of a raw table is caught by the expectation that describes it; clean data passes;
the Data Docs render without the internet."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grec.data.tables import load_tables
from grec.data.contract import write_tables
from grec.data.simulate import SimulationConfig, simulate_to
from grec.validation.run import validate
from grec.validation.suites import ValidationPolicy

POLICY = ValidationPolicy(start=pd.Timestamp("2026-06-01", tz="UTC"), end=pd.Timestamp("2026-09-07", tz="UTC"),
                          min_rows_per_task=50, min_positives_per_task=1)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation") / "clean"
    simulate_to(out, SimulationConfig(n_impressions=20_000, seed=5))
    return out


def _null_customer(t):
    t["customers"]["customer_id"] = t["customers"]["customer_id"].astype("float64")
    t["customers"].loc[4, "customer_id"] = np.nan


def _duplicate_item(t):
    t["items"] = pd.concat([t["items"], t["items"].iloc[[7]]], ignore_index=True)


def _negative_price(t):
    t["items"].loc[3, "price"] = -10.0


def _unknown_flow(t):
    t["impressions"].loc[11, "flow"] = "XYZ"


def _purchase_without_click(t):
    no_click = t["impressions"].index[t["impressions"]["click"] == 0][0]
    t["impressions"].loc[no_click, "purchase"] = 1


def _outside_window(t):
    t["impressions"].loc[5, "event_timestamp"] = pd.Timestamp("2026-10-01", tz="UTC")


def _short_embedding(t):
    t["items"].at[9, "image_embedding"] = t["items"].at[9, "image_embedding"][:20]


def _nan_feature(t):
    t["customers"].loc[6, "monthly_bill"] = np.nan


def _infinite_feature(t):
    t["customers"].loc[6, "monthly_bill"] = np.inf


def _too_large_for_float32(t):  # the model reads float32: this would be inf there
    t["items"]["discount_pct"] = t["items"]["discount_pct"].astype("float64")
    t["items"].loc[2, "discount_pct"] = 1e300


CORRUPTIONS = {
    # name: (corrupt, table, expectation, column)
    "null customer_id": (_null_customer, "customers", "expect_column_values_to_not_be_null", "customer_id"),
    "duplicate item id": (_duplicate_item, "items", "expect_compound_columns_to_be_unique", "item_id,updated_at"),
    "negative price": (_negative_price, "items", "expect_column_values_to_be_between", "price"),
    "unknown flow": (_unknown_flow, "impressions", "expect_column_values_to_be_in_set", "flow"),
    "purchase without click": (_purchase_without_click, "impressions",
                               "expect_column_pair_values_a_to_be_greater_than_b", "click,purchase"),
    "timestamp outside the window": (_outside_window, "impressions", "expect_column_values_to_be_between",
                                     "event_timestamp"),
    "embedding of the wrong length": (_short_embedding, "items", "expect_column_values_to_be_between",
                                      "image_embedding__length"),
    "NaN in a numerical feature": (_nan_feature, "customers", "expect_column_values_to_not_be_null", "monthly_bill"),
    "inf in a numerical feature": (_infinite_feature, "customers", "expect_column_values_to_be_between", "monthly_bill"),
    "a number past float32": (_too_large_for_float32, "items", "expect_column_values_to_be_between", "discount_pct"),
}


def test_a_clean_delivery_passes(clean, tmp_path):
    report = validate(clean, POLICY, tmp_path / "report")
    assert report.success, [f.line() for f in report.failures]
    assert (tmp_path / "report" / "report.json").exists()
    html = report.html.removeprefix("file://")
    assert html.endswith("index.html") and pd.io.common.file_exists(html)
    assert_renders_offline(Path(html).parent)


def assert_renders_offline(site: Path) -> None:
    """Every script, style sheet and image of every Data Docs page is a file of the site (GX's
    pages load theirs from CDNs: on an air-gapped machine an empty, unstyled page)."""
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 5
    for page in pages:
        assets = re.findall(r'<(?:script|link|img)\b[^>]*?(?:src|href)="([^"]+)"', page.read_text())
        external = [a for a in assets if a.startswith(("http://", "https://", "//"))]
        assert not external, f"{page}: loads {external[:3]}"
        missing = [a for a in assets if not (page.parent / a.split("?")[0]).exists()]
        assert not missing, f"{page}: {missing[:3]} not in the site"
    fonts = re.findall(r"url\(([^)]+)\)", next(site.rglob("all.min.css")).read_text())
    assert fonts and all((next(site.rglob("all.min.css")).parent / f).exists() for f in fonts if f.endswith(".woff2"))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_is_caught_by_its_expectation(clean, tmp_path, name):
    corrupt, table, expectation, column = CORRUPTIONS[name]
    tables = load_tables(clean)
    corrupt(tables)
    data = tmp_path / "bad"
    if name == "null customer_id":  # the contract's writer refuses a null key, as it should: write raw parquet
        write_tables({k: v for k, v in tables.items() if k != "customers"}, data)
        tables["customers"].to_parquet(data / "customers.parquet")
    else:
        write_tables(tables, data)
    report = validate(data, POLICY, tmp_path / "report")
    assert not report.success
    caught = [f for f in report.failures if (f.table, f.expectation, f.column) == (table, expectation, column)]
    assert caught, [f.line() for f in report.failures]
    both_copies = name == "duplicate item id"
    assert caught[0].unexpected == (2 if both_copies else 1)
    assert len(caught[0].examples) == caught[0].unexpected  # the offending rows themselves
    assert report.tables[table]["success"] is False


def _write(tables, folder):
    write_tables(tables, folder)
    return folder


def test_a_future_timestamp_fails_without_a_window(clean, tmp_path):
    tables = load_tables(clean)
    tables["impressions"].loc[5:9, "event_timestamp"] += pd.Timedelta(days=365)
    report = validate(_write(tables, tmp_path / "future"), ValidationPolicy(min_rows_per_task=50, min_positives_per_task=1),
                      tmp_path / "report")
    caught = [f for f in report.failures if (f.table, f.column) == ("impressions", "event_timestamp")]
    assert not report.success and caught and caught[0].unexpected == 5, [f.line() for f in report.failures]


def test_unknown_columns_are_a_warning_or_under_strict_a_failure(clean, tmp_path):
    tables = load_tables(clean)
    tables["items"]["color"] = "red"
    data = tmp_path / "extra"
    write_tables(tables, data)
    tables["items"].to_parquet(data / "items.parquet")  # the contract's writer keeps only its columns
    report = validate(data, POLICY, tmp_path / "report")
    assert report.success and len(report.warnings) == 1 and "['color']" in report.warnings[0], report.warnings
    strict = validate(data, ValidationPolicy(**{**POLICY.__dict__, "strict_columns": True}), tmp_path / "strict")
    assert not strict.success and any("color" in f.line() for f in strict.failures)


def test_an_unreadable_file_is_one_error_naming_it(clean, tmp_path):
    import shutil

    from grec.data.schema import SchemaError

    data = tmp_path / "truncated"
    shutil.copytree(clean, data)
    whole = (data / "impressions.parquet").read_bytes()
    (data / "impressions.parquet").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SchemaError, match=r"impressions.parquet: not a readable parquet file \("):
        validate(data, POLICY, tmp_path / "report")
    with pytest.raises(SchemaError, match=r"impressions.parquet: not a readable parquet file \("):
        load_tables(data)  # what `grec train --data` reads


def test_missing_values_stop_the_raw_load_before_training(clean, tmp_path):
    from grec.data.schema import SchemaError

    tables = load_tables(clean)
    rows = tables["customers"].sample(frac=0.05, random_state=0).index
    tables["customers"].loc[rows, "monthly_bill"] = np.nan
    with pytest.raises(SchemaError, match=rf"customers.parquet: column 'monthly_bill' has {len(rows):,} missing values"):
        load_tables(_write(tables, tmp_path / "nan"))


def test_another_world_is_held_to_its_own_contract_not_the_storefronts_ranges(tmp_path):
    """Columns named like the storefront's (a rating of 0-10, 60 pages, clicks on 40% of rows) in
    another dataset's contract are that dataset's columns: the storefront's ranges, page count and
    label rates are not applied to them (they are to the storefront's, above)."""
    from grec.data.contract import Contract, write_dataset
    from grec.data.schema import TaskVocabulary

    contract = Contract.define("reviews", {"customers": {"categorical": ["segment"], "numerical": ["rating"]},
                                           "impressions": {"categorical": ["page_id"]},
                                           "items": {"categorical": ["item_kind"], "numerical": ["price"]}},
                               TaskVocabulary(("WEB",), ("CTR",), {"CTR": "click"}, {"CTR": None}), inputs=())
    rng, n, stamp = np.random.default_rng(0), 400, pd.Timestamp("2026-01-05", tz="UTC")
    tables = {
        "customers": pd.DataFrame({"customer_id": np.arange(20), "updated_at": stamp, "segment": np.arange(20) % 3,
                                   "rating": np.float32(rng.uniform(0, 10, 20))}),
        "items": pd.DataFrame({"item_id": np.arange(5), "updated_at": stamp, "item_kind": np.arange(5) % 2,
                               "price": np.float32([3, 4, 5, 6, 7])}),
        "impressions": pd.DataFrame({"impression_id": np.arange(n), "event_timestamp": stamp + pd.to_timedelta(np.arange(n), "min"),
                                     "customer_id": np.arange(n) % 20, "item_id": np.arange(n) % 5, "flow": "WEB",
                                     "page_id": np.arange(n) % 60, "click": (rng.random(n) < 0.4).astype(np.int8)}),
    }
    write_dataset(tables, tmp_path / "reviews", contract)
    report = validate(tmp_path / "reviews", ValidationPolicy(min_rows_per_task=50, min_positives_per_task=1), tmp_path / "out")
    assert report.success, [f.line() for f in report.failures]
