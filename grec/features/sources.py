"""The feature store's source tables, derived from the raw tables of a data folder's contract.

Raw tables (customers, items, impressions) are what upstream systems deliver. The feature views
read up to five derived tables, each keyed by one entity and stamped with the time its values
became true, so a point-in-time join can ask "what did we know about this customer at 10:32?":

- customer_profile: the customer snapshots, as delivered (the contract's customer columns).
- customer_activity: per impression, the customer's recent views as logged at that moment
  (only where the source has behaviour histories).
- item_catalog: the catalogue entries (the contract's item columns), with their description text.
- item_embeddings: the pre-computed image vector and the description's sentence vector (only
  where the source has item vectors).
- query_embeddings: the sentence vector of every distinct search query, keyed by its text hash
  (only where the source has search text).

Columns, types and roles come from the contract (grec.data.contract; the storefront's is
grec.data.schema's); nothing is typed twice. `build_sources` writes the tables and the contract
they came from into one folder under $GREC_HOME; feature_repo/definitions.py reads that contract
(`active_contract`) to declare the views, so `feast apply` on the state folder sees the same.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from grec import settings
from grec.data.contract import CONTRACT_FILE, TELECOM, Contract, read_contract, to_arrow
from grec.data.tables import load_tables
from grec.data.schema import Column, Role, Table
from grec.data.text import ENCODER_NAME, TextEmbeddingStore, text_hash
from grec.io import atomic_folder, write_json, write_parquet

TEXT_EMBEDDING = Column("text_embedding", "vector<float32>", Role.ITEM_TEXT,
                        f"{ENCODER_NAME} vector of the item description")
QUERY_EMBEDDING = Column("query_embedding", "vector<float32>", Role.SEARCH_TEXT,
                         f"{ENCODER_NAME} vector of the search query")
QUERY_HASH = Column("query_hash", "string", Role.KEY, "First 16 hex digits of the query's SHA-256")
# Query vectors do not change with time; one fixed stamp makes them valid for every impression.
QUERY_STAMP = pd.Timestamp("2000-01-01", tz="UTC")
HISTORY_COLUMNS = ("viewed_item_ids", "visited_page_ids")


def source_tables(contract: Contract = TELECOM) -> dict[str, Table]:
    """The source tables of a contract's data, by view name (the optional views only where the
    contract's source has that input)."""
    # the platform's names: the sources are the platform's own files, whatever the user's are called
    customers, items, impressions = (contract.tables[n].platform_view() for n in ("customers", "items", "impressions"))
    tables = [Table("customer_profile", "customer_id", customers.columns)]
    if contract.has("histories"):
        tables.append(Table("customer_activity", "customer_id", tuple(
            impressions.column(n) for n in ("customer_id", "event_timestamp", *HISTORY_COLUMNS))))
    tables.append(Table("item_catalog", "item_id", tuple(c for c in items.columns if c.role != Role.ITEM_IMAGE)))
    if contract.has("item_vectors"):
        tables.append(Table("item_embeddings", "item_id", (
            items.column("item_id"), items.column("updated_at"), items.column("image_embedding"), TEXT_EMBEDDING)))
    if contract.has("search"):
        tables.append(Table("query_embeddings", "query_hash", (
            QUERY_HASH, Column("created_at", "timestamp", Role.TIMESTAMP, "Fixed: a text's vector never changes"),
            QUERY_EMBEDDING)))
    # A table with no feature column (a source whose customers are only ids) needs no view.
    return {t.name: t for t in tables if feature_columns(t)}


def timestamp_column(table: Table) -> str:
    return next(c.name for c in table.columns if c.role == Role.TIMESTAMP)


def feature_columns(table: Table) -> list[Column]:
    """The columns a feature view serves: everything but the entity key and the timestamp."""
    return [c for c in table.columns if c.role not in (Role.KEY, Role.TIMESTAMP)]


def sources_dir() -> Path:
    return settings.features_dir() / "sources"


def source_path(name: str) -> Path:
    return sources_dir() / f"{name}.parquet"


def active_contract() -> Contract:
    """The contract of the data the sources were last built from (the storefront's before any)."""
    return read_contract(sources_dir())


def build_sources(data_dir: Path, texts: TextEmbeddingStore | None = None, progress: bool = False) -> dict[str, Path]:
    """Derive the source tables from the raw tables in `data_dir` and write them, with the
    contract they follow, as one folder (replaced whole: no view of another dataset is left)."""
    data_dir = Path(data_dir)
    contract = read_contract(data_dir)
    raw = load_tables(data_dir, contract)
    tables = source_tables(contract)
    texts = texts if texts is not None else TextEmbeddingStore()
    customers, items, impressions = raw["customers"], raw["items"], raw["impressions"]

    frames = {name: frame for name, frame in (("customer_profile", customers), ("item_catalog", items))
              if name in tables}
    if "item_catalog" in frames:
        frames["item_catalog"] = items[tables["item_catalog"].names()]
    if "customer_activity" in tables:
        # Two impressions of one customer in the same microsecond would be two values for one
        # (entity, time) key, and the point-in-time join would pick either; keep the later-logged one.
        frames["customer_activity"] = impressions[tables["customer_activity"].names()].drop_duplicates(
            ["customer_id", "event_timestamp"], keep="last")
    if "item_embeddings" in tables:
        vectors = items[["item_id", "updated_at", "image_embedding"]].copy()
        vectors["text_embedding"] = list(texts.lookup(items["description"].to_numpy(), progress=progress))
        frames["item_embeddings"] = vectors
    if "query_embeddings" in tables:
        queries = pd.Series(impressions["search_query"].unique(), dtype=object)
        queries = queries[queries.str.strip() != ""]
        frames["query_embeddings"] = pd.DataFrame({
            "query_hash": queries.map(text_hash).to_numpy(),
            "created_at": QUERY_STAMP,
            "query_embedding": list(texts.lookup(queries.to_numpy(), progress=progress)),
        })

    with atomic_folder(sources_dir()) as tmp:
        for name, frame in frames.items():
            write_parquet(tmp / f"{name}.parquet", to_arrow(frame.reset_index(drop=True), tables[name]))
        if contract is not TELECOM:
            write_json(tmp / CONTRACT_FILE, contract.to_dict())
    return {name: source_path(name) for name in frames}
