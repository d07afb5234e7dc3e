"""`grec data init`: a user's own tables (tests/data/own_logs.py: other flows, labels and features,
no search, histories or item vectors) get a contract.json the readers and `grec validate` take;
what cannot be used is reported with the fix, what cannot be drafted is refused naming the file,
the column and the fix, and nothing is ever half-written."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grec.cli import app
from grec.data import scaffold
from grec.data.contract import CONTRACT_FILE, NO_IMAGE, read_contract
from grec.data.tables import load_tables
from grec.data.scaffold import ContractExists, DraftError, draft_contract, write_draft
from tests.data.own_logs import DAYS, FEATURES, FLOWS, START, USE_CASE_ARGS, own_logs, write_own_logs

runner = CliRunner()
FILES = ["customers.parquet", "impressions.parquet", "items.parquet"]


def init(folder, *args):
    return runner.invoke(app, ["data", "init", str(folder), *map(str, args)])


def text(result) -> str:
    return " ".join(result.output.split())  # rich may wrap long lines


def rewrite(folder, table: str, change) -> None:
    path = folder / f"{table}.parquet"
    pq.write_table(change(pq.read_table(path)), path)


@pytest.fixture
def logs(tmp_path):
    return write_own_logs(tmp_path / "shop")


def test_own_logs_have_a_signal_and_positives_in_every_test_task():
    tables = own_logs()
    imp = tables["impressions"].to_pandas()
    assert len(imp) == 2000 and set(imp["flow"]) == set(FLOWS)
    assert (imp["bought"] <= imp["clicked"]).all() and 0.05 < imp["clicked"].mean() < 0.4
    span = imp["event_timestamp"].agg(["min", "max"])
    assert span["min"] >= START and span["max"] < START + pd.Timedelta(days=DAYS)
    test = imp[imp["event_timestamp"] >= START + pd.Timedelta(days=DAYS - 7)]
    positives = test.groupby("flow")[["clicked", "bought"]].sum()
    assert (positives >= 3).all().all(), positives
    # A linear model on one-hot features, fitted on the first three weeks, ranks the last one.
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    frame = (imp.merge(tables["customers"].to_pandas(), on="customer_id")
             .merge(tables["items"].to_pandas(), on="item_id").sort_values("impression_id"))
    x = pd.get_dummies(frame[["segment", "country", "genre", "slot", "flow"]].astype(str)).to_numpy(float)
    x = np.hstack([x, np.log(frame[["spend", "price_eur"]].to_numpy(float))])
    train = (frame["event_timestamp"] < START + pd.Timedelta(days=DAYS - 7)).to_numpy()
    for label in ("clicked", "bought"):
        y = frame[label].to_numpy()
        model = LogisticRegression(max_iter=1000).fit(x[train], y[train])
        assert roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1]) > 0.65, label


def test_init_drafts_a_contract_that_validate_and_the_readers_take(logs, tmp_path):
    result = init(logs, *USE_CASE_ARGS)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in logs.iterdir()) == [CONTRACT_FILE, *FILES]  # nothing temporary left
    contract = read_contract(logs)
    assert contract.name == "shop" and contract.tasks.flows == ("APP", "EMAIL", "WEB")
    assert contract.tasks.use_cases == ("CLICK", "BUY")
    assert contract.tasks.labels == {"CLICK": "clicked", "BUY": "bought"}
    assert contract.tasks.populations == {"CLICK": None, "BUY": None}
    assert contract.inputs == () and contract.funnel == (("clicked", "bought"),) and contract.split is None
    for table, kinds in FEATURES.items():
        for kind, columns in kinds.items():
            assert contract.features(table, kind) == columns, (table, kind)
    out = text(result)
    for shown in ("segment, country", "price_eur", "APP+CLICK", "clicked -> bought", "by time",
                  f"grec validate --data {logs}", f"grec train --data {logs}",
                  f"grec pipeline run training --local --param data={logs.resolve()}"):
        assert shown in out, shown

    checked = runner.invoke(app, ["validate", "--data", str(logs), "--out", str(tmp_path / "report")])
    assert checked.exit_code == 0, checked.output
    assert "FAILED" not in checked.output and "impressions 2,000 rows" in text(checked)


def test_readers_fill_the_inputs_the_source_does_not_have(logs):
    write_draft(draft_contract(logs, use_cases={"CLICK": "clicked", "BUY": "bought"}))
    tables = load_tables(logs)
    imp, items = tables["impressions"], tables["items"]
    assert len(imp) == 2000 and (imp["search_query"] == "").all()
    assert all(len(v) == 0 for v in imp["viewed_item_ids"]) and all(len(v) == 0 for v in imp["visited_page_ids"])
    assert (items["description"] == "").all()
    assert all(np.array_equal(v, NO_IMAGE) for v in items["image_embedding"])
    assert {"segment", "country", "spend"} <= set(tables["customers"].columns)
    assert {"slot", "clicked", "bought", "flow"} <= set(imp.columns)


def test_labels_and_use_cases_default_to_the_int8_columns(logs):
    draft = draft_contract(logs)
    tasks = draft.contract.tasks
    assert tasks.use_cases == ("CLICKED", "BOUGHT") and tasks.labels == {"CLICKED": "clicked", "BOUGHT": "bought"}
    assert draft.contract.funnel == () and draft.unused == [] and draft.casts == []
    # a use case over the rows where another label is 1, as CVR over clicks; --label adds its own use case
    draft = draft_contract(logs, labels=["clicked"], use_cases=["CVR=bought"], populations=["CVR=clicked"],
                           funnel=["clicked,bought"])
    tasks = draft.contract.tasks
    assert tasks.use_cases == ("CVR", "CLICKED") and tasks.populations == {"CVR": "clicked", "CLICKED": None}
    # only one label asked for: the other int8 0/1 column is left out (not a feature: it could leak), saying why
    draft = draft_contract(logs, use_cases=["CLICK=clicked"])
    assert draft.contract.tasks.label_columns == ("clicked",)
    assert [(u.column, "--label bought" in u.why) for u in draft.unused] == [("bought", True)]


def test_columns_that_cannot_be_used_are_reported_with_the_fix_and_cast_on_request(logs):
    rewrite(logs, "customers", lambda t: t.append_column("lifetime_value", pa.array(np.linspace(0, 9, len(t)), pa.float64()))
            .append_column("city", pa.array(["Lyon", "Graz"] * (len(t) // 2))))
    rewrite(logs, "items", lambda t: t.append_column("stock_delta", pa.array(np.arange(len(t)) - 3, pa.int64()))
            .append_column("pages", pa.array(np.arange(len(t)), pa.int32())))
    result = init(logs, *USE_CASE_ARGS)
    assert result.exit_code == 0, result.output
    out = text(result)
    assert "items.parquet: pages (int32): categorical features are int64" in out
    contract = read_contract(logs)
    assert contract.features("customers", "numerical") == ["spend", "lifetime_value"]  # float64: read as float32
    # values as they are: strings and negative codes are categorical values the model's vocabulary maps
    assert contract.features("customers", "categorical") == ["segment", "country", "city"]
    assert contract.features("items", "categorical") == ["genre", "stock_delta"]
    assert contract.types == {"customers": {"city": "string"}}

    result = init(logs, *USE_CASE_ARGS, "--cast", "--force")
    assert result.exit_code == 0, result.output
    assert "cast items.parquet: pages int32 -> int64" in text(result) and "cast customers" not in text(result)
    contract = read_contract(logs)
    assert contract.features("customers", "numerical") == ["spend", "lifetime_value"]
    assert contract.features("items", "categorical") == ["genre", "stock_delta", "pages"]
    assert pq.read_schema(logs / "customers.parquet").field("lifetime_value").type == pa.float64()  # as written
    tables = load_tables(logs)  # the readers take the cast tables
    np.testing.assert_allclose(tables["customers"]["lifetime_value"], np.linspace(0, 9, 200), rtol=1e-6)
    assert list(tables["customers"]["city"][:2]) == ["Lyon", "Graz"]


def test_bool_labels_and_times_without_a_zone_are_read_as_they_are_and_float_labels_cast(logs):
    rewrite(logs, "impressions", lambda t: t.set_column(t.schema.get_field_index("clicked"), "clicked",
                                                        t["clicked"].cast(pa.bool_()))
            .set_column(t.schema.get_field_index("event_timestamp"), "event_timestamp",
                        t["event_timestamp"].cast(pa.timestamp("ns"))))
    before = pq.read_table(logs / "impressions.parquet")
    draft = draft_contract(logs, use_cases={"CLICK": "clicked", "BUY": "bought"})
    assert draft.casts == []
    write_draft(draft)
    assert pq.read_table(logs / "impressions.parquet").equals(before)  # nothing rewritten
    imp = load_tables(logs)["impressions"]
    assert imp["clicked"].dtype == np.int8 and str(imp["event_timestamp"].dt.tz) == "UTC"
    assert (imp["clicked"].to_numpy() == before["clicked"].to_numpy()).all()
    assert (imp["event_timestamp"] == before["event_timestamp"].to_pandas().dt.tz_localize("UTC")).all()

    rewrite(logs, "impressions", lambda t: t.set_column(t.schema.get_field_index("bought"), "bought",
                                                        t["bought"].cast(pa.float64())))
    with pytest.raises(DraftError, match="column 'bought' is a label of type float64: the readers need int8"):
        draft_contract(logs, use_cases={"CLICK": "clicked", "BUY": "bought"})
    result = init(logs, *USE_CASE_ARGS, "--cast", "--force")
    assert result.exit_code == 0, result.output
    assert "cast impressions.parquet: bought float64 -> int8" in text(result)
    assert load_tables(logs)["impressions"]["bought"].dtype == np.int8


def test_tables_written_by_pandas_with_its_dtypes(logs):
    """pandas' dtypes (int32 from astype, categorical flows, the index written as a column):
    int32 is reported, then cast, a categorical (dictionary) flow read as it is; the index is never
    a feature."""
    imp = pq.read_table(logs / "impressions.parquet").to_pandas().set_index("impression_id", drop=False)
    imp.index.name = "row"
    imp.assign(flow=imp["flow"].astype("category"), slot=imp["slot"].astype("int32")).to_parquet(logs / "impressions.parquet")
    draft = draft_contract(logs, use_cases=["CLICK=clicked"], cast=True)
    assert [(c.column, c.target) for c in draft.casts] == [("slot", "int64")]
    assert [u.column for u in draft.unused] == ["bought", "row"] and "index=False" in draft.unused[1].why
    write_draft(draft)
    imp = load_tables(logs)["impressions"]
    assert imp["slot"].dtype == np.int64 and set(imp["flow"]) == set(FLOWS) and "row" not in imp.columns


def test_a_split_column_is_found_or_refused(logs):
    rng = np.random.default_rng(1)
    rewrite(logs, "impressions", lambda t: t.append_column("split", pa.array(rng.choice(["train", "valid", "test"], len(t)))))
    assert draft_contract(logs).contract.split == "split"
    rewrite(logs, "impressions", lambda t: t.append_column("fold", pa.array(["train", "eval"] * (len(t) // 2))))
    with pytest.raises(DraftError, match="impressions.parquet: column 'fold' is the split .* \\['eval'\\]"):
        draft_contract(logs, split="fold")


def test_refusals_name_the_file_the_column_and_the_fix(logs):
    (logs / "items.parquet").unlink()
    result = init(logs)
    assert result.exit_code == 1 and isinstance(result.exception, DraftError)
    assert (f"{logs / 'items.parquet'}: not found (the default name) for the items table; name its file with --file "
            "items=FILE (parquet files here: customers.parquet, impressions.parquet)") in str(result.exception)
    write_own_logs(logs)

    rewrite(logs, "impressions", lambda t: t.drop(["flow"]))
    # described in any dataset's words, not the storefront's ("Customer flow: AAL, EUP or NSE")
    with pytest.raises(DraftError, match="impressions.parquet: no column for flow \\(the flow, the first token of "
                                         "each task: one of the contract's flows\\); name yours with --column "
                                         "impressions.flow=COLUMN \\(columns: "):
        draft_contract(logs)
    write_own_logs(logs)

    rewrite(logs, "impressions", lambda t: t.set_column(t.schema.get_field_index("clicked"), "clicked", t["clicked"].cast(pa.int64()))
            .set_column(t.schema.get_field_index("bought"), "bought", t["bought"].cast(pa.int64())))
    with pytest.raises(DraftError, match="no label column found .* --label COL .*only 0 and 1: clicked, bought"):
        draft_contract(logs)
    with pytest.raises(DraftError, match="column 'slot' is a label but holds .* values other than 0 and 1"):
        draft_contract(logs, labels=["slot"])
    with pytest.raises(DraftError, match="no column 'clicks' \\(named as a label"):
        draft_contract(logs, use_cases=["CLICK=clicks"])
    write_own_logs(logs)

    with pytest.raises(DraftError, match="--funnel bought,clicked: [0-9,]+ rows have clicked=1 where bought is not 1"):
        draft_contract(logs, funnel=["bought,clicked"])
    with pytest.raises(DraftError, match="--population CVR=clicked: no use case CVR"):
        draft_contract(logs, populations=["CVR=clicked"])
    rewrite(logs, "items", lambda t: t.drop(["price_eur"]))
    with pytest.raises(DraftError, match="no item numerical feature: items.parquet needs a float32 column"):
        draft_contract(logs)
    assert not (logs / CONTRACT_FILE).exists()


def test_an_existing_contract_is_kept_unless_forced(logs):
    assert init(logs, *USE_CASE_ARGS).exit_code == 0
    first = (logs / CONTRACT_FILE).read_text()
    result = init(logs)
    assert result.exit_code == 1 and isinstance(result.exception, ContractExists)
    assert "contract.json exists; pass --force" in str(result.exception)
    assert (logs / CONTRACT_FILE).read_text() == first
    result = init(logs, "--force", "--name", "mine")
    assert result.exit_code == 0, result.output
    assert json.loads((logs / CONTRACT_FILE).read_text())["name"] == "mine"
    assert read_contract(logs).tasks.use_cases == ("CLICKED", "BOUGHT")


def test_a_draft_the_reader_refuses_is_not_written(logs, monkeypatch):
    draft = draft_contract(logs)

    def broken(folder):
        raise scaffold.SchemaError(f"{folder / CONTRACT_FILE}: field 'tasks': broken")

    monkeypatch.setattr(scaffold, "read_contract", broken)
    with pytest.raises(DraftError, match=f"{logs / CONTRACT_FILE}: the draft does not read back .*nothing written"):
        write_draft(draft)
    assert sorted(p.name for p in logs.iterdir()) == FILES


def test_true_probability_columns_are_named_with_oracle_and_never_become_features(logs):
    def add_truth(table):
        n = table.num_rows
        rng = np.random.default_rng(0)
        return (table.append_column("p_click", pa.array(rng.uniform(0, 1, n).astype(np.float32)))
                .append_column("p_buy", pa.array(rng.uniform(0, 1, n))))  # float64: cast on request

    rewrite(logs, "impressions", add_truth)
    result = init(logs, *USE_CASE_ARGS, "--oracle", "CLICK=p_click", "--oracle", "BUY=p_buy", "--cast")
    assert result.exit_code == 0, result.output
    assert "True probabilities: CLICK = p_click, BUY = p_buy" in text(result)
    contract = read_contract(logs)
    assert contract.tasks.oracles == {"CLICK": "p_click", "BUY": "p_buy"}
    assert "p_click" not in contract.features("impressions", "numerical")
    tables = load_tables(logs)
    assert tables["impressions"]["p_buy"].dtype == np.float32  # cast by the draft
    (logs / CONTRACT_FILE).unlink()
    # without --oracle the same columns would be features: a leak the user is told about by name
    assert "p_click" in init(logs, *USE_CASE_ARGS).output
    (logs / CONTRACT_FILE).unlink()
    use_cases, funnel = ["CLICK=clicked", "BUY=bought"], ["clicked,bought"]
    with pytest.raises(DraftError, match=r"a true probability is needed for every use case \(CLICK, BUY\) or for none"):
        draft_contract(logs, use_cases=use_cases, funnel=funnel, oracles=["CLICK=p_click"], cast=True)
    with pytest.raises(DraftError, match="--oracle CLICK=p_nope: no column 'p_nope'"):
        draft_contract(logs, use_cases=use_cases, funnel=funnel, oracles=["CLICK=p_nope", "BUY=p_buy"], cast=True)
    with pytest.raises(DraftError, match="column 'slot' is named as CLICK's true probability .* in \\[0, 1\\]"):
        draft_contract(logs, use_cases=use_cases, funnel=funnel, oracles=["CLICK=slot", "BUY=p_buy"], cast=True)
    assert not (logs / CONTRACT_FILE).exists()


def test_a_task_token_column_makes_the_tasks_its_combinations_with_the_flow(logs, tmp_path):
    """--task-token page: the tasks are flow + page + use case over the combinations the logs hold
    (EMAIL is never on the cart page here), the page is not a feature, and validation and the
    readers take the contract; a page value with a '+' is refused naming the column."""
    def with_page(table):
        imp = table.to_pandas()
        page = np.where(imp["slot"] % 2 == 0, "home", "cart")
        page[imp["flow"] == "EMAIL"] = "home"
        return pa.Table.from_pandas(imp.assign(page=page), schema=table.schema.append(pa.field("page", pa.string())))

    rewrite(logs, "impressions", with_page)
    result = init(logs, *USE_CASE_ARGS, "--task-token", "page")
    assert result.exit_code == 0, result.output
    tasks = read_contract(logs).tasks
    assert tasks.tokens == ("flow", "page")
    assert tasks.flows == ("APP+cart", "APP+home", "EMAIL+home", "WEB+cart", "WEB+home") and tasks.n_tasks == 10
    assert "page" not in read_contract(logs).features("impressions", "categorical")
    assert "Routes (flow+page)" in text(result) and "EMAIL+home+BUY" in text(result)
    checked = runner.invoke(app, ["validate", "--data", str(logs), "--out", str(tmp_path / "report")])
    assert checked.exit_code == 0 and "FAILED" not in checked.output, checked.output
    assert set(load_tables(logs)["impressions"]["page"]) == {"home", "cart"}

    rewrite(logs, "impressions", lambda t: t.set_column(t.column_names.index("page"), "page",
                                                          pa.array(["home+1"] * len(t))))
    refused = init(logs, *USE_CASE_ARGS, "--task-token", "page", "--force")
    assert refused.exit_code == 1 and isinstance(refused.exception, DraftError)
    assert "impressions.parquet: column 'page' is a task token but a value has a '+'" in str(refused.exception)
