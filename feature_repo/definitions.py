"""GRec's features, declared once for training (offline store) and serving (online store).

Names and types come from the contract of the data the sources were built from (the storefront's,
grec.data.schema, or a data folder's contract.json, copied beside the sources by
`grec features apply --data DIR`); this file only says which columns form which view, how long a
value stays valid, and which views each feature service bundles. A source without behaviour
histories, item vectors or search text has no view for them. Source files live in
$GREC_HOME/features/sources/; `GREC_HOME=... feast -c feature_repo apply` sees the same objects.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.types import Array, Bool, Float32, Int64, String

from grec.features import sources
from grec.features.store import batch_source

contract = sources.active_contract()
tables = sources.source_tables(contract)

# Contract dtypes (grec.data.schema.Column.dtype) -> Feast types.
FEAST_TYPES = {
    "int64": Int64,
    "float32": Float32,
    "string": String,
    "bool": Bool,
    "list<int64>": Array(Int64),
    "list<string>": Array(String),
    "vector<float32>": Array(Float32),
}
# A key's contract dtype -> its entity's value type (ids are integers or strings, as the logs have them).
KEY_TYPES = {"int64": ValueType.INT64, "string": ValueType.STRING}


def _view(name: str, entity: Entity, ttl: timedelta, **tags: str) -> FeatureView | None:
    """A view serving every feature column of one source table (ttl 0: values never expire);
    None where the contract's source has no such table."""
    if name not in tables:
        return None
    table = tables[name]
    return FeatureView(
        name=table.name,
        entities=[entity],
        ttl=ttl,
        schema=[Field(name=c.name, dtype=FEAST_TYPES[c.dtype], description=c.description)
                for c in sources.feature_columns(table)],
        source=batch_source(f"{table.name}_source", sources.source_path(table.name), sources.timestamp_column(table)),
        tags={"owner": "grec", **tags},
    )


# A customer, or a prospect who has not signed up yet (NSE flow); keyed like the raw tables.
customer = Entity(name="customer", join_keys=["customer_id"], description="Customer or prospect",
                  value_type=KEY_TYPES[contract.tables["customers"].column("customer_id").dtype])

# A catalogue item (on the storefront: a device, plan add-on or accessory).
item = Entity(name="item", join_keys=["item_id"], description="Catalogue item",
              value_type=KEY_TYPES[contract.tables["items"].column("item_id").dtype])

# A distinct search text, keyed by its hash so the online store can look a query's vector up.
search_query = Entity(name="search_query", join_keys=["query_hash"], value_type=ValueType.STRING,
                      description="Distinct search query text") if "query_embeddings" in tables else None

# Profile snapshots (the contract's customer columns). A snapshot older than 180 days no
# longer describes the customer: the point-in-time join then finds no value, and the training-set
# builder reports the row rather than train on a stale profile.
customer_profile = _view("customer_profile", customer, timedelta(days=180), inputs="context")

# The customer's recent views and the pages they were on, as known at each moment: the behaviour
# sequences. A month without activity makes the history stale.
customer_activity = _view("customer_activity", customer, timedelta(days=30), inputs="sequences")

# Catalogue attributes (the contract's item columns) and the description text. An entry
# stays valid until the catalogue replaces it, so no TTL.
item_catalog = _view("item_catalog", item, timedelta(0), inputs="item")

# Item vectors: the upstream image embedding and the description's sentence embedding.
item_embeddings = _view("item_embeddings", item, timedelta(0), inputs="item", encoder=sources.ENCODER_NAME)

# Sentence vectors of search queries seen so far; a new query is encoded at request time.
query_embeddings = _view("query_embeddings", search_query, timedelta(0), inputs="search", encoder=sources.ENCODER_NAME)

# Training, version 1: profile and catalogue values as known at each impression (point-in-time).
# List-valued features are not in it: the file store runs on dask, which hashes list columns cell
# by cell at every step (a 20k-impression set took 18 s with one vector column, 1.2 s without).
# - Behaviour sequences: training uses the ones logged with each impression, i.e. exactly what the
#   service saw when it ranked (no train/serve skew); customer_activity feeds the online store.
# - Item image vectors: joined as of each impression from item_embeddings' source by the
#   training-set builder (grec.features.training_set), a few hundred items.
# - Text vectors: rows carry the texts (description, search query); training reads their vectors
#   from the text-embedding table that fills the views, by hash (2 x 384 floats per row would make
#   a 1M-impression training set several GB).
grec_training_v1 = FeatureService(
    name="grec_training_v1",
    features=[v for v in (customer_profile, item_catalog) if v],
    tags={"version": "1", "use": "training"},
    description="Point-in-time features of each impression for GRec training",
)

# Serving, version 1: what the ranking service reads per request, vectors included.
grec_serving_v1 = FeatureService(
    name="grec_serving_v1",
    features=[v for v in (customer_profile, customer_activity, item_catalog, item_embeddings, query_embeddings) if v],
    tags={"version": "1", "use": "serving"},
    description="Online features for the GRec ranking service",
)
