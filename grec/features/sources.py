"""The feature store's source tables, derived from the raw tables of the data contract.

Raw tables (customers, items, impressions) are what upstream systems deliver. The feature views
read five derived tables, each keyed by one entity and stamped with the time its values became
true, so a point-in-time join can ask "what did we know about this customer at 10:32?":

- customer_profile: the customer snapshots, as delivered.
- customer_activity: per impression, the customer's recent views as logged at that moment.
- item_catalog: the catalogue entries, with their description text.
- item_embeddings: the pre-computed image vector and the description's sentence vector.
- query_embeddings: the sentence vector of every distinct search query, keyed by its text hash.

Columns, types and roles come from grec.data.schema; nothing is typed twice.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from grec import settings
from grec.data.dataset import load_table
from grec.data.schema import CUSTOMERS, IMPRESSIONS, ITEMS, Column, Role, SchemaError, Table
from grec.data.contract import CONTRACT_FILE, TELECOM, read_contract, to_arrow
from grec.data.text import ENCODER_NAME, TextEmbeddingStore, text_hash
from grec.io import write_parquet

TEXT_EMBEDDING = Column("text_embedding", "vector<float32>", Role.ITEM_TEXT,
                        f"{ENCODER_NAME} vector of the item description")
QUERY_EMBEDDING = Column("query_embedding", "vector<float32>", Role.SEARCH_TEXT,
                         f"{ENCODER_NAME} vector of the search query")
QUERY_HASH = Column("query_hash", "string", Role.KEY, "First 16 hex digits of the query's SHA-256")
# Query vectors do not change with time; one fixed stamp makes them valid for every impression.
QUERY_STAMP = pd.Timestamp("2000-01-01", tz="UTC")

CUSTOMER_PROFILE = Table("customer_profile", "customer_id", CUSTOMERS.columns)
CUSTOMER_ACTIVITY = Table("customer_activity", "customer_id", tuple(
    IMPRESSIONS.column(n) for n in ("customer_id", "event_timestamp", "viewed_item_ids", "visited_page_ids")))
ITEM_CATALOG = Table("item_catalog", "item_id", tuple(c for c in ITEMS.columns if c.role != Role.ITEM_IMAGE))
ITEM_EMBEDDINGS = Table("item_embeddings", "item_id", (
    ITEMS.column("item_id"), ITEMS.column("updated_at"), ITEMS.column("image_embedding"), TEXT_EMBEDDING))
QUERY_EMBEDDINGS = Table("query_embeddings", "query_hash", (
    QUERY_HASH, Column("created_at", "timestamp", Role.TIMESTAMP, "Fixed: a text's vector never changes"),
    QUERY_EMBEDDING))

SOURCES: dict[str, Table] = {t.name: t for t in (
    CUSTOMER_PROFILE, CUSTOMER_ACTIVITY, ITEM_CATALOG, ITEM_EMBEDDINGS, QUERY_EMBEDDINGS)}


def timestamp_column(table: Table) -> str:
    return next(c.name for c in table.columns if c.role == Role.TIMESTAMP)


def feature_columns(table: Table) -> list[Column]:
    """The columns a feature view serves: everything but the entity key and the timestamp."""
    return [c for c in table.columns if c.role not in (Role.KEY, Role.TIMESTAMP)]


def sources_dir() -> Path:
    return settings.features_dir() / "sources"


def source_path(name: str) -> Path:
    return sources_dir() / SOURCES[name].file


def build_sources(data_dir: Path, texts: TextEmbeddingStore | None = None, progress: bool = False) -> dict[str, Path]:
    """Derive the five source tables from the raw tables in `data_dir` and write them (atomically)."""
    data_dir = Path(data_dir)
    contract = read_contract(data_dir)
    if contract is not TELECOM:
        raise SchemaError(f"{data_dir}: the feature store's definitions (feature_repo/) are the storefront's; "
                          f"'{contract.name}' data (its {CONTRACT_FILE}) trains from its tables: grec train --data {data_dir}")
    customers = load_table(data_dir / CUSTOMERS.file, CUSTOMERS)
    items = load_table(data_dir / ITEMS.file, ITEMS)
    impressions = load_table(data_dir / IMPRESSIONS.file, IMPRESSIONS)
    texts = texts or TextEmbeddingStore()

    # Two impressions of one customer in the same microsecond would be two values for one
    # (entity, time) key, and the point-in-time join would pick either; keep the later-logged one.
    activity = impressions[CUSTOMER_ACTIVITY.names()].drop_duplicates(["customer_id", "event_timestamp"], keep="last")

    item_vectors = items[["item_id", "updated_at", "image_embedding"]].copy()
    item_vectors["text_embedding"] = list(texts.lookup(items["description"].to_numpy(), progress=progress))

    queries = pd.Series(impressions["search_query"].unique(), dtype=object)
    queries = queries[queries.str.strip() != ""]
    query_vectors = pd.DataFrame({
        "query_hash": queries.map(text_hash).to_numpy(),
        "created_at": QUERY_STAMP,
        "query_embedding": list(texts.lookup(queries.to_numpy(), progress=progress)),
    })

    frames = {
        CUSTOMER_PROFILE.name: customers,
        CUSTOMER_ACTIVITY.name: activity,
        ITEM_CATALOG.name: items[ITEM_CATALOG.names()],
        ITEM_EMBEDDINGS.name: item_vectors,
        QUERY_EMBEDDINGS.name: query_vectors,
    }
    return {
        name: write_parquet(source_path(name), to_arrow(frame.reset_index(drop=True), SOURCES[name]))
        for name, frame in frames.items()
    }
