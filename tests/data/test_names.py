"""A user's own names: files and core columns named as the team names them (listeners.parquet,
listener_id, shown_at, surface...), mapped by the contract, never renamed on disk."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grec.cli import app
from grec.data.append import append_batch
from grec.data.contract import CONTRACT_FILE, Contract, read_contract
from grec.data.scaffold import DraftError, draft_contract, write_draft
from grec.data.schema import SchemaError
from grec.data.tables import load_tables
from grec.features.training_set import open_source
from grec.validation.run import validate
from tests.data.own_logs import FEATURES, NAMED_COLUMNS, NAMED_FILES, USE_CASE_ARGS, own_logs, write_named_logs

runner = CliRunner()
FILE_ARGS = [f"--file={t}={f}" for t, f in NAMED_FILES.items()]


@pytest.fixture
def music(tmp_path):
    return write_named_logs(tmp_path / "music")


def rewrite(folder, file: str, change) -> None:
    pq.write_table(change(pq.read_table(folder / file)), folder / file)


def test_init_recognises_the_users_names_and_asks_for_the_rest(music):
    with pytest.raises(DraftError) as refused:
        draft_contract(music, files=dict(NAMED_FILES))
    # the flow cannot be told from its values: asked for, with the file's columns
    assert ("plays.parquet: no column for flow (the flow, the first token of each task: one of the contract's flows); "
            "name yours with --column impressions.flow=COLUMN (columns: play_id, shown_at, listener_id, track_id, "
            "surface, slot, clicked, bought)") in str(refused.value)

    before = {f: (music / f).read_bytes() for f in NAMED_FILES.values()}
    result = runner.invoke(app, ["data", "init", str(music), *FILE_ARGS, "--column", "flow=surface", *USE_CASE_ARGS])
    assert result.exit_code == 0, result.output
    assert {f: (music / f).read_bytes() for f in NAMED_FILES.values()} == before  # nothing rewritten
    contract = read_contract(music)
    assert contract.names == {"files": NAMED_FILES, "columns": NAMED_COLUMNS}
    assert json.loads((music / CONTRACT_FILE).read_text())["names"]["columns"]["impressions"]["flow"] == "surface"
    assert contract.tasks.flows == ("APP", "EMAIL", "WEB")
    for table, kinds in FEATURES.items():
        for kind, columns in kinds.items():
            assert contract.features(table, kind) == columns
    out = " ".join(result.output.split())
    # each recognised part said, with how to correct it
    for said in ("listeners.parquet: 'listener_id' is customer_id (the customer key): the one id column listeners.parquet "
                 "shares with plays.parquet; if not, name it with --column customers.customer_id=COLUMN",
                 "plays.parquet: 'shown_at' is event_timestamp (when the item was shown): the only timestamp column",
                 "plays.parquet: 'play_id' is impression_id", "tracks.parquet: 'catalogued_at' is updated_at",
                 "plays.parquet: play_id = impression_id, shown_at = event_timestamp"):
        assert said in out, said


def test_the_readers_take_the_users_files_under_the_platforms_names(music):
    write_draft(draft_contract(music, use_cases={"CLICK": "clicked", "BUY": "bought"}, files=NAMED_FILES,
                               columns=["flow=surface"]))
    tables = load_tables(music)
    original = own_logs()
    for name, table in tables.items():
        expected = original[name].to_pandas()
        assert list(table.columns[:len(expected.columns)]) == list(expected.columns)
        for column in expected.columns:
            assert np.array_equal(table[column].to_numpy(), expected[column].to_numpy()), (name, column)


def test_refusals_and_validation_speak_of_the_users_columns(music, tmp_path):
    write_draft(draft_contract(music, use_cases={"CLICK": "clicked"}, files=NAMED_FILES, columns=["flow=surface"]))
    rewrite(music, "plays.parquet", lambda t: t.set_column(
        t.schema.get_field_index("surface"), "surface", pa.array([None] * 3 + t["surface"].to_pylist()[3:], pa.string())))
    with pytest.raises(SchemaError, match="plays.parquet: column 'surface' has 3 missing values"):
        load_tables(music)
    report = validate(music, out_dir=tmp_path / "report")
    assert not report.success
    assert {(f.table, f.column) for f in report.failures if f.expectation.endswith("not_be_null")} == {("impressions", "surface")}
    docs = (tmp_path / "report").rglob("*.html")
    assert any("surface" in p.read_text() for p in docs)  # the Data Docs name the user's column

    rewrite(music, "plays.parquet", lambda t: t.set_column(t.schema.get_field_index("surface"), "surface",
                                                         pa.array(["WEB"] * len(t))))
    rewrite(music, "listeners.parquet", lambda t: t.slice(1))  # listener 0 gone: the join names the user's key
    with pytest.raises(SchemaError, match=r"plays.parquet: \d+ rows reference a listener_id absent from listeners.parquet "
                                          r"\(first: row \d+, listener_id=0\)"):
        open_source(music)
    rewrite(music, "plays.parquet", lambda t: t.drop(["surface"]))
    with pytest.raises(SchemaError, match="plays.parquet: does not match the 'impressions' schema: missing column "
                                          "'surface' \\(expected string: the flow"):
        load_tables(music)


def test_a_batch_is_appended_under_the_users_names(music, tmp_path):
    write_draft(draft_contract(music, use_cases={"CLICK": "clicked"}, files=NAMED_FILES, columns=["flow=surface"]))
    later = own_logs(300, seed=5)["impressions"]
    later = later.set_column(0, "impression_id", pa.array(np.arange(10_000, 10_300), pa.int64()))
    batch = tmp_path / "batch"
    batch.mkdir()
    renames = NAMED_COLUMNS["impressions"]
    pq.write_table(later.rename_columns([renames.get(c, c) for c in later.column_names]), batch / "plays.parquet")
    (done,) = append_batch(music, batch)
    assert done.table == "impressions" and done.rows == 300 and done.total == 2300
    assert pq.read_schema(music / "plays.parquet").names[:5] == ["play_id", "shown_at", "listener_id", "track_id", "surface"]
    assert len(load_tables(music)["impressions"]) == 2300


def test_a_contract_refuses_names_that_cannot_be_read():
    base = dict(features=FEATURES, tasks=read_tasks())
    with pytest.raises(SchemaError, match="'flow' is not a core column of customers"):
        Contract.define("x", **base, inputs=(), names={"columns": {"customers": {"flow": "surface"}}})
    with pytest.raises(SchemaError, match="plays.parquet: column 'listener_id' is named for impression_id and customer_id"):
        Contract.define("x", **base, inputs=(), names={"files": {"impressions": "plays.parquet"},
                                                       "columns": {"impressions": {"impression_id": "listener_id",
                                                                                   "customer_id": "listener_id"}}})
    with pytest.raises(SchemaError, match="two tables are read from one file"):
        Contract.define("x", **base, inputs=(), names={"files": {"items": "logs.parquet", "impressions": "logs.parquet"}})
    with pytest.raises(SchemaError, match="'../plays.parquet' is not a file name in the data folder"):
        Contract.define("x", **base, inputs=(), names={"files": {"impressions": "../plays.parquet"}})


def read_tasks():
    from grec.data.schema import TaskVocabulary

    return TaskVocabulary(("WEB",), ("CLICK",), {"CLICK": "clicked"}, {"CLICK": None})
