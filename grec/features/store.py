"""The Feast feature store: open it, apply the repository, materialize, read online features.

The repository (feature_repo/) is declarative; its registry and stores live under $GREC_HOME
(see feature_repo/feature_store.yaml), so every state folder has its own store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import re
import shutil
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from grec import settings
from grec.data.text import TextEmbeddingStore
from grec.features import sources

FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"
TRAINING_SERVICE = "grec_training_v1"
SERVING_SERVICE = "grec_serving_v1"
# The file store's first incremental materialization starts at now - TTL, which would silently
# skip older values of backfilled data; a fixed early start loads the latest value of every entity.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
FEAST_YAML_ENV = "FEAST_FS_YAML_FILE_PATH"  # feast.constants.FEAST_FS_YAML_FILE_PATH_ENV_NAME


def _object_array_token(x) -> tuple:
    """One-pass content hash of an object array whose cells are arrays (or lists) of numbers."""
    import numpy as np

    cells = [np.asarray(c) if isinstance(c, (np.ndarray, list)) else None for c in x.ravel()]
    if any(c is None or c.dtype.hasobject for c in cells):
        return ("object-array", x.shape, hashlib.blake2b(pickle.dumps(x, protocol=5), digest_size=16).hexdigest())
    lengths = np.fromiter((c.size for c in cells), dtype=np.int64, count=len(cells))
    values = np.concatenate([c.ravel() for c in cells])
    digest = hashlib.blake2b(lengths.tobytes(), digest_size=16)
    digest.update(str(values.dtype).encode())
    digest.update(values.view(np.uint8).tobytes())
    return ("object-array-of-arrays", x.shape, digest.hexdigest())


def _hash_object_arrays_once() -> None:
    """Make dask hash object-dtype arrays in one pass.

    The file offline store runs on dask, which names every intermediate frame by a hash of its
    data; for object columns (list-valued features: sequences, embeddings) dask pickles and
    unpickles the column two or three times per hash, and hashes again after every step.
    Materializing 30k query vectors (384 floats each) did not finish in 5 minutes that way.
    Registered through dask's extension point (`normalize_token.register`); numbers and strings
    keep dask's own fast paths, and each array object is hashed once (cached by identity).
    """
    import numpy as np
    from dask.tokenize import normalize_token

    if getattr(normalize_token, "_grec_object_arrays", False):
        return
    numeric = normalize_token.dispatch(np.ndarray)
    seen: dict[int, tuple] = {}  # id(array) -> (weak reference, token)

    def normalize(x):
        if not x.dtype.hasobject or x.size == 0 or isinstance(x.flat[0], str):
            return numeric(x)
        hit = seen.get(id(x))
        if hit is not None and hit[0]() is x:
            return hit[1]
        token = _object_array_token(x)
        seen[id(x)] = (weakref.ref(x, lambda _, key=id(x): seen.pop(key, None)), token)
        return token

    normalize_token.register(np.ndarray)(normalize)
    normalize_token._grec_object_arrays = True


def config_file(repo: Path = FEATURE_REPO, check_variables: bool = True) -> Path:
    """The feature_store.yaml in use: `$FEAST_FS_YAML_FILE_PATH` (Feast's own variable, which its CLI
    reads too: feature_repo/feature_store.redis.yaml for Redis online), else the repository's."""
    chosen = os.environ.get(FEAST_YAML_ENV, "").strip()
    path = Path(chosen).expanduser() if chosen else Path(repo) / "feature_store.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{FEAST_YAML_ENV}={chosen}: no such file" if chosen else f"{path}: no such file")
    # Feast expands $VARS with os.path.expandvars, which leaves an unset one as it is: say so here
    missing = sorted({m for m in re.findall(r"\$\{(\w+)\}", path.read_text()) if m not in os.environ})
    if missing and check_variables:
        raise ValueError(f"{path} needs {', '.join(missing)} set (the store's connection); "
                         "`python deploy/local/services.py start redis` prints what to export for a local Redis")
    return path


def offline_store_type(repo: Path = FEATURE_REPO) -> str:
    """The configured offline store's type ('duckdb', 'file', 'spark', ...; Feast's default 'file'
    where the file names none)."""
    import yaml

    offline = (yaml.safe_load(config_file(repo, check_variables=False).read_text()) or {}).get("offline_store", "file")
    return offline.get("type", "file") if isinstance(offline, dict) else str(offline)


def batch_source(name: str, path: Path, timestamp_field: str):
    """A view's source: a parquet file, as the configured offline store reads one. Feast's Spark
    store accepts only SparkSources and the file and DuckDB stores only FileSources, so this is the
    one place where the configuration decides a definition."""
    if offline_store_type() == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        return SparkSource(name=name, path=str(path), file_format="parquet", timestamp_field=timestamp_field)
    from feast import FileSource

    return FileSource(name=name, path=str(path), timestamp_field=timestamp_field)


def require_offline_engine(store) -> None:
    """Before the offline store runs: Spark's driver is a JVM, so say what to install rather than let
    py4j fail on a missing binary. (Only offline work needs it: the ranking service reads the online
    store under the same configuration without Java.)"""
    if store.config.offline_store.type != "spark":
        return
    java_home = os.environ.get("JAVA_HOME", "")
    if not (shutil.which("java") or (java_home and (Path(java_home) / "bin" / "java").exists())):
        raise RuntimeError("the Spark offline store needs a Java 17 or 21 runtime and none is on PATH or in JAVA_HOME: "
                           "install Debian's default-jre-headless (`python deploy/local/services.py install java`)")


def stop_spark() -> None:
    """End the Spark session and the JVM this process started, if any (local mode keeps the JVM,
    several hundred MB, for the life of the process otherwise). The JVM exits when its stdin closes."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if (session := SparkSession.getActiveSession()) is not None:
        session.stop()
    if (gateway := SparkContext._gateway) is not None:
        gateway.shutdown()
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=60)
        SparkContext._gateway = SparkContext._jvm = None


def feature_store(repo: Path = FEATURE_REPO):
    """The store for the current state folder ($GREC_HOME is resolved and exported for Feast),
    configured by `config_file()`."""
    from feast import FeatureStore

    _hash_object_arrays_once()
    os.environ[settings.STATE_ENV] = str(settings.state_dir())
    settings.features_dir().mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo), fs_yaml_file=config_file(repo))


def online_store_description(store) -> str:
    """Where the online store is, for reports: 'sqlite <path>' or 'redis <host:port>'."""
    config = store.config.online_store
    where = getattr(config, "path", None) or getattr(config, "connection_string", "")
    if config.type == "redis":  # never a password in a report
        where = where.split(",")[0]
    return f"{config.type} {where}".strip()


def repo_objects(repo: Path = FEATURE_REPO) -> list:
    """Every Feast object (entities, views, services) declared in the repository's definitions."""
    from feast import Entity, FeatureService, FeatureView

    os.environ[settings.STATE_ENV] = str(settings.state_dir())
    spec = importlib.util.spec_from_file_location("grec_feature_repo", Path(repo) / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [v for v in vars(module).values() if isinstance(v, (Entity, FeatureView, FeatureService))]


def apply(data_dir: Path, texts: TextEmbeddingStore | None = None, progress: bool = False) -> dict:
    """Build the source tables from the raw tables in `data_dir` and register the repository."""
    paths = sources.build_sources(data_dir, texts, progress=progress)
    store = feature_store()
    objects = repo_objects()
    # The registry then holds exactly this repository: objects an earlier dataset declared (a view
    # for histories this source has not, say) are deleted, not left for a reader to trip over.
    names = {(type(o).__name__, o.name) for o in objects}
    registered = [*store.list_entities(), *store.list_feature_views(), *store.list_feature_services()]
    stale = [o for o in registered if (type(o).__name__, o.name) not in names and o.name != "__dummy"]
    store.apply(objects, objects_to_delete=stale, partial=False)
    return {"sources": {k: str(v) for k, v in paths.items()}, "objects": sorted(o.name for o in objects),
            "registry": str(settings.features_dir() / "registry.db")}


def _utc(ts) -> datetime:
    ts = pd.Timestamp(ts)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def materialize(end, start=None) -> dict:
    """Load every view's latest values stamped in [start, end] into the online store."""
    store = feature_store()
    require_offline_engine(store)
    start, end = _utc(start if start is not None else EARLIEST), _utc(end)
    store.materialize(start_date=start, end_date=end)
    return {"start": start.isoformat(), "end": end.isoformat(), "online_store": online_store_description(store)}


@dataclass
class OnlineFeatures:
    """What a ranking request reads: one customer row and one row per candidate item."""

    customer: dict  # feature -> value (None where the store has nothing for this customer)
    items: pd.DataFrame  # one row per candidate, in request order


def _service_features(store, service: str, views: tuple[str, ...]) -> list[str]:
    """'view:feature' references of `service` restricted to `views`."""
    refs = []
    for projection in store.get_feature_service(service).feature_view_projections:
        if projection.name in views:
            refs += [f"{projection.name}:{f.name}" for f in projection.features]
    return refs


def _key(value):
    """An entity key as Feast takes it: a Python int or str (numpy scalars are neither)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (int, str)) else value


class OnlineReader:
    """Reads the serving feature service from the online store (one store handle, reused)."""

    CUSTOMER_VIEWS = ("customer_profile", "customer_activity")

    ITEM_VIEWS = ("item_catalog", "item_embeddings")

    def __init__(self, service: str = SERVING_SERVICE):
        self.store = feature_store()
        self.customer_refs = _service_features(self.store, service, self.CUSTOMER_VIEWS)
        self.item_refs = _service_features(self.store, service, self.ITEM_VIEWS)

    def customer(self, customer_id: int) -> dict:
        """feature -> value (None where the store has nothing for this customer)."""
        if not self.customer_refs:  # a source whose customers have no features
            return {}
        found = self.store.get_online_features(
            features=self.customer_refs, entity_rows=[{"customer_id": _key(customer_id)}]).to_dict()
        return {k: v[0] for k, v in found.items()}

    def items(self, item_ids) -> pd.DataFrame:
        """One row per id, in order (NaN/None features for ids the store does not know)."""
        if not self.item_refs:
            return pd.DataFrame({"item_id": list(item_ids)})
        return self.store.get_online_features(
            features=self.item_refs, entity_rows=[{"item_id": _key(i)} for i in item_ids]).to_df()

    def read(self, customer_id: int, item_ids: list[int]) -> OnlineFeatures:
        return OnlineFeatures(self.customer(customer_id), self.items(item_ids))
