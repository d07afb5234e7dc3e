"""Drafting a contract from a user's own tables: `grec data init DIR`.

A new source arrives as three parquet tables (customers, items, impressions) and no contract.json.
`draft_contract` reads their schemas and makes one streaming pass over the rows (batches, only the
columns it classifies, never a whole table in memory) to decide what each column is:

- the files and core columns (keys, times, the flow; search_query, viewed_item_ids with
  visited_page_ids, description with image_embedding where the source has those inputs) under the
  user's own names: given (--file, --column), the platform's names, or recognised from the columns
  (grec.data.recognise); the contract records them and nothing is renamed on disk;
- labels: the columns given (--label, --use-case, --population, --funnel), else every int8 or
  bool impressions column holding only 0 and 1;
- categorical features: int64 columns of codes >= 0; numerical features: float32 columns;
- the split: the column given, else a string column named "split" holding train/valid/test;
- task tokens beside the flow (--task-token page): the tasks are the combinations of the flow's
  and the tokens' values the impressions hold, each with every use case.

Columns that cannot be used as they are (strings, negative codes, nulls, int32 or float64 where
the readers need int64 or float32) are reported with the fix, never silently dropped; those a type
cast would fix are cast when asked (`cast=True`: each table rewritten whole, atomically). What the
readers cannot work with at all (a missing table or core column, a label that is not 0/1) is
refused naming the file, the column and the fix. `write_draft` writes contract.json only after the
platform's own reader has read it back and checked the tables against it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from grec.data import schema
from grec.data.column_stats import MAX_VALUES, cast_advice, column_kind, funnel_violations, needs_cast, scan, type_name
from grec.data.contract import CONTRACT_FILE, CORE_COLUMNS, OPTIONAL_INPUTS, SPLITS, Contract, read_contract
from grec.data.recognise import OPTIONAL, TABLES, find_files, parse_columns, parse_files, propose
from grec.data.schema import SchemaError, TaskVocabulary
from grec.errors import UserError
from grec.io import write_json, write_parquet

REQUIRED = {t: tuple(c for c in cols if c not in OPTIONAL) for t, cols in CORE_COLUMNS.items()}
_SHARED = {"customer_id", "item_id", "updated_at"}  # parts meant to be in several tables (the joins)
_PLATFORM_NAMES = {c for cols in CORE_COLUMNS.values() for c in cols}
TARGET = {"int64": pa.int64(), "float32": pa.float32(), "int8": pa.int8(), "string": pa.string()}


class DraftError(SchemaError):
    """The tables cannot be drafted into a contract as they are; the message names each file,
    column and fix."""


class ContractExists(UserError):
    """The folder already has a contract.json and overwriting was not asked for."""


@dataclass
class Unused:
    """A column the draft leaves out, and what would make it usable."""

    file: str
    column: str
    type: str
    why: str  # the reason and the fix

    def line(self) -> str:
        return f"{self.file}: {self.column} ({self.type}): {self.why}"


@dataclass
class Cast:
    """A column whose values fit the contract once stored with another arrow type."""

    file: str
    column: str
    source: pa.DataType  # the arrow type it has
    target: str  # the contract dtype it needs: int64 | float32 | int8 | string | timestamp

    def arrow_type(self) -> pa.DataType:
        if self.target == "timestamp":  # a time without a zone is read as UTC
            return pa.timestamp(self.source.unit, tz="UTC")
        return TARGET[self.target]

    def line(self) -> str:
        target = type_name(self.arrow_type()) if self.target == "timestamp" else self.target
        return f"{self.file}: {self.column} {type_name(self.source)} -> {target}"


@dataclass
class Draft:
    """What `draft_contract` inferred: the contract, and everything the user should know about it."""

    data_dir: Path
    contract: Contract
    rows: dict[str, int]
    unused: list[Unused] = field(default_factory=list)
    casts: list[Cast] = field(default_factory=list)  # needed by the contract; applied by write_draft
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.contract.to_dict()


def _parse_pairs(items, what: str, sep: str = "=") -> list[tuple[str, str]]:
    """'NAME=LABEL' (or 'A,B') strings, (name, label) pairs or a {name: label} dict -> pairs."""
    if isinstance(items, dict):
        items = list(items.items())
    pairs = []
    for item in items or ():
        if not isinstance(item, str):
            item = sep.join(item)
        left, mark, right = item.partition(sep)
        if not mark or not left.strip() or not right.strip():
            raise DraftError(f"{what} {item!r}: expected {'NAME=LABEL' if sep == '=' else 'A,B'}")
        pairs.append((left.strip(), right.strip()))
    return pairs


class _Drafter:
    """Reads the folder and accumulates what each column is, what is unused and what is refused."""

    def __init__(self, data_dir: Path, cast: bool, files=None, columns=None):
        self.data_dir, self.cast = Path(data_dir), cast
        self.problems: list[str] = []  # refusals: file, column, fix
        self.unused: list[Unused] = []
        self.casts: list[Cast] = []
        self.notes: list[str] = []
        self.features = {t: {"categorical": [], "numerical": []} for t in TABLES}
        self.types: dict[str, dict[str, str]] = {t: {} for t in TABLES}  # values that are not integer codes
        self.owner: dict[str, str] = {}  # column name -> the file that has it (one name, one column)
        if not self.data_dir.is_dir():
            raise DraftError(f"{self.data_dir}: no such folder (it should hold a customers, an items and an "
                             "impressions table as parquet files)")
        try:
            given_files, given_columns = parse_files(files), parse_columns(columns)
        except ValueError as e:
            raise DraftError(str(e)) from None
        found, missing = find_files(self.data_dir, given_files)
        if missing:
            raise DraftError(f"{self.data_dir}: " + "; ".join(missing))
        self.files = found
        self.arrow, self.stats, self.rows = {}, {}, {}
        for t in TABLES:
            path = self.data_dir / self.files[t]
            try:
                self.arrow[t] = pq.read_schema(path)
            except (pa.ArrowException, OSError) as e:
                raise DraftError(f"{path}: not a readable parquet file ({e})") from None
        self.names = propose(self.files, self.arrow, given_columns)
        self.problems += self.names.problems
        self.notes += self.names.notes
        for t in TABLES:
            self.stats[t], self.rows[t] = scan(self.data_dir / self.files[t], self.arrow[t])

    def file(self, table: str) -> str:
        return self.files[table]

    def col(self, table: str, part: str) -> str | None:
        """The user's column playing core `part` of `table` (None: none)."""
        return self.names.of(table, part)

    def refuse(self, table: str, column: str, why: str) -> None:
        self.problems.append(f"{self.file(table)}: column '{column}' {why}")

    def leave_out(self, table: str, column: str, why: str) -> None:
        self.unused.append(Unused(self.file(table), column, type_name(self.arrow[table].field(column).type), why))

    def typed(self, table: str, column: str, dtype: str) -> bool | None:
        """Whether `column` can be read as `dtype` (recording the cast it needs when cast=True):
        True: yes; False: a cast would do but was not asked for; None: no cast does."""
        t = self.arrow[table].field(column).type
        need = needs_cast(dtype, t)
        if need is None:
            return None
        if need and not self.cast:
            return False
        if need:
            self.casts.append(Cast(self.file(table), column, t, dtype))
        return True

    def typed_or_refused(self, table: str, column: str, dtype: str, what: str, fix: str) -> bool:
        """`typed`, refusing the column (named for `what` it is) where no cast is asked for or none fits."""
        ok = self.typed(table, column, dtype)
        if not ok:
            self.refuse(table, column, f"{what} of type {type_name(self.arrow[table].field(column).type)}: "
                        + (cast_advice(dtype) if ok is False else fix))
        return bool(ok)

    def claim(self, table: str, column: str) -> bool:
        """One column name is one column across the tables (but the join keys)."""
        if column in {self.col(t, p) for t in TABLES for p in _SHARED}:
            return True
        other = self.owner.get(column)
        if other and other != self.file(table):
            self.leave_out(table, column, f"{other} has a column of this name too (one name is one column across "
                                          "the tables): rename one of them to use both")
            return False
        self.owner[column] = self.file(table)
        return True

    # core columns ------------------------------------------------------------------------

    def core(self) -> None:
        for t in TABLES:
            for part, name in self.names.columns[t].items():
                if part not in _SHARED:
                    self.owner.setdefault(name, self.file(t))
        for t in TABLES:
            base, stats = schema.TABLES[t], self.stats[t]
            for part in REQUIRED[t]:
                col, name = base.column(part), self.col(t, part)
                if name is None:
                    continue  # refused by the names' proposal
                dtype = col.dtype
                if col.role == schema.Role.KEY and column_kind(self.arrow[t].field(name).type) == "string":
                    dtype = self.types[t][part] = "string"  # ids as the logs have them: strings too
                ok = self.typed(t, name, dtype)
                if ok is None:
                    self.refuse(t, name, f"has type {type_name(self.arrow[t].field(name).type)}; the readers need {col.dtype}"
                                     + (" (re-encode the values as integer codes)" if col.dtype == "int64" else ""))
                elif ok is False:
                    self.refuse(t, name, f"has type {type_name(self.arrow[t].field(name).type)}; {cast_advice(col.dtype)}")
                if stats[name].nulls:
                    self.refuse(t, name, f"has {stats[name].nulls:,} nulls; every row needs a {name} ({part})")
            if self.rows[t] == 0:
                self.problems.append(f"{self.file(t)}: no rows")

    def flows(self) -> tuple[str, ...]:
        flow = self.col("impressions", "flow")
        stats = self.stats["impressions"].get(flow)
        if stats is None or column_kind(stats.type) != "string":
            return ()
        if stats.more_values:
            self.refuse("impressions", flow, f"is the flow but has more than {MAX_VALUES:,} distinct values: a flow is a scenario "
                                               "(a page, a channel, a campaign), each a task per use case")
        return tuple(sorted(stats.values))

    def task_tokens(self, names: list[str]) -> list[str]:
        """The impressions columns named as task tokens beside the flow (a page, a surface), claimed:
        text columns of few values, none with a '+' (the routes' separator)."""
        out = []
        for name in names:
            stats = self.stats["impressions"].get(name)
            if stats is None:
                self.problems.append(f"--task-token {name}: {self.file('impressions')} has no column '{name}'")
            elif column_kind(stats.type) != "string":
                self.refuse("impressions", name, f"is a task token but has type {type_name(stats.type)}; a task token "
                                                  "is text (a page, a surface), one of few values")
            elif stats.more_values:
                self.refuse("impressions", name, f"is a task token but has more than {MAX_VALUES:,} distinct values")
            elif any("+" in v for v in stats.values):
                self.refuse("impressions", name, "is a task token but a value has a '+': task names join tokens with '+'")
            elif name in out or name == self.col("impressions", "flow"):
                self.problems.append(f"--task-token {name}: named twice (the flow is a task token already)")
            elif self.claim("impressions", name):
                out.append(name)
        return out

    def routes(self, tokens: list[str]) -> tuple[str, ...]:
        """The combinations of the flow's and the task tokens' values the impressions hold, each a
        route ("AAL+home"), sorted: the tasks are these routes x the use cases."""
        columns, seen = [self.col("impressions", "flow"), *tokens], set()
        for batch in pq.ParquetFile(self.data_dir / self.file("impressions")).iter_batches(columns=columns):
            combos = pa.Table.from_batches([batch]).group_by(columns).aggregate([])  # streamed: one batch at a time
            seen.update(zip(*(combos.column(c).to_pylist() for c in columns)))
        return tuple(sorted("+".join(map(str, combo)) for combo in seen))

    # labels, use cases, split -------------------------------------------------------------

    def label_ok(self, column: str, why: str = "") -> bool:
        t = "impressions"
        if column not in self.arrow[t].names:
            self.problems.append(f"{self.file(t)}: no column '{column}' (named as a label{why}; columns: "
                                 f"{', '.join(self.arrow[t].names)})")
            return False
        if column in self.names.core(t):
            self.refuse(t, column, f"is a core column, not a label{why}")
            return False
        s = self.stats[t][column]
        if column_kind(s.type) not in ("int", "float", "bool"):
            self.refuse(t, column, f"is a label{why} but has type {type_name(s.type)}: a label is an int8 column of 0 and 1")
            return False
        if not s.binary:
            found = (f"{s.nulls:,} nulls" if s.nulls else f"{s.nans:,} NaNs" if s.nans else
                     f"{s.non_binary:,} values other than 0 and 1 (from {s.min} to {s.max})")
            self.refuse(t, column, f"is a label{why} but holds {found}: a label is 0 or 1 on every row")
            return False
        return self.typed_or_refused(t, column, "int8", f"is a label{why}", "store it as int8 0/1")

    def labels(self, given: list[str]) -> tuple[list[str], list[str]]:
        """The label columns that can be read as labels, and every column taken for a label."""
        if given:
            given = list(dict.fromkeys(given))
            return [c for c in given if self.label_ok(c)], given
        t = "impressions"
        found = [f.name for f in self.arrow[t] if f.name not in self.names.core(t)
                 and (f.type == pa.int8() or pa.types.is_boolean(f.type)) and self.stats[t][f.name].binary]
        if not found:
            binary = [f.name for f in self.arrow[t] if f.name not in self.names.core(t)
                      and column_kind(f.type) in ("int", "float", "bool") and self.stats[t][f.name].binary]
            raise DraftError(f"{self.file(t)}: no label column found (labels are int8 or bool columns of 0/1); name "
                             "yours with --label COL (repeatable)"
                             + (f"; columns holding only 0 and 1: {', '.join(binary)}" if binary else ""))
        return [c for c in found if self.label_ok(c, " (inferred: an int8/bool column of 0/1)")], found

    def oracle(self, use_case: str, column: str) -> bool:
        """Whether `column` can be read as use case's true probability: float32 (or cast), in [0, 1]."""
        t = "impressions"
        if column not in self.arrow[t].names:
            self.problems.append(f"{self.file(t)}: --oracle {use_case}={column}: no column '{column}'")
            return False
        s = self.stats[t][column]
        if column_kind(s.type) != "float" or s.nulls or s.nans or (s.min is not None and (s.min < 0 or s.max > 1)):
            self.refuse(t, column, f"is named as {use_case}'s true probability (--oracle) but is not a float column of "
                                   "probabilities in [0, 1] on every row")
            return False
        return self.typed_or_refused(t, column, "float32", "is a true probability (--oracle)", "store it as float32")

    def split(self, given: str | None) -> str | None:
        t = "impressions"
        if given is None:
            s = self.stats[t].get("split")
            if s is None or column_kind(s.type) != "string":
                return None
            if s.nulls or not s.values <= set(SPLITS):
                return None  # reported as an unused string column
            given = "split"
            self.notes.append("split: the 'split' column (train/valid/test per impression) splits the rows")
        if given not in self.arrow[t].names:
            self.problems.append(f"{self.file(t)}: --split: no column '{given}' (columns: {', '.join(self.arrow[t].names)})")
            return None
        s = self.stats[t][given]
        if column_kind(s.type) != "string":
            self.refuse(t, given, f"is the split (--split) but has type {type_name(s.type)}: store train/valid/test as strings")
            return None
        other = sorted(s.values - set(SPLITS))[:5]
        if s.nulls or other:
            self.refuse(t, given, f"is the split (--split) but holds {f'{s.nulls:,} nulls' if s.nulls else other}: "
                                  "every row is one of train, valid, test")
            return None
        absent = [v for v in SPLITS if v not in s.values]
        if absent:
            self.refuse(t, given, f"is the split (--split) but has no {'/'.join(absent)} rows: training early-stops on "
                                  "valid and evaluation reads test")
            return None
        if not self.typed(t, given, "string"):
            self.refuse(t, given, "is dictionary-encoded; store it as plain strings, or rerun with --cast")
            return None
        return given

    # optional inputs ----------------------------------------------------------------------

    def inputs(self) -> list[str]:
        have = []
        imp, items = self.arrow["impressions"], self.arrow["items"]
        s = self.stats["impressions"]
        query = self.col("impressions", "search_query")
        if query:
            if column_kind(imp.field(query).type) != "string" or pa.types.is_dictionary(imp.field(query).type):
                self.leave_out("impressions", query, "the search text must be a string column ('' where none)")
            elif s[query].non_empty:
                have.append("search")
            else:
                self.leave_out("impressions", query, "every query is empty: no search input (readers fill '')")
        viewed, visited = self.col("impressions", "viewed_item_ids"), self.col("impressions", "visited_page_ids")
        seqs = [c for c in (viewed, visited) if c]
        if seqs:
            element = {c: _list_element(imp.field(c).type) for c in seqs}
            good = [c for c in seqs if element[c] is not None]
            item_type = self.types["items"].get("item_id", "int64")
            if len(good) == 2 and element[viewed] != item_type:
                for c in seqs:
                    self.leave_out("impressions", c, f"viewed_item_ids lists {element[viewed]} values but the item ids are "
                                                     f"{item_type}: a history lists item ids")
            elif len(good) < 2:
                for c in seqs:
                    self.leave_out("impressions", c, "histories need both viewed_item_ids and visited_page_ids, each a "
                                                     "list of integers or strings, aligned (a page per viewed item)")
            elif s[viewed].non_empty:
                have.append("histories")
                for part, c in (("viewed_item_ids", viewed), ("visited_page_ids", visited)):
                    if element[c] == "string":
                        self.types["impressions"][part] = "list<string>"
            else:
                for c in seqs:
                    self.leave_out("impressions", c, "every history is empty: no histories input (readers fill empty lists)")
        description, image = self.col("items", "description"), self.col("items", "image_embedding")
        vecs = [c for c in (description, image) if c]
        if vecs:
            desc_ok = description is not None and column_kind(items.field(description).type) == "string" \
                and not pa.types.is_dictionary(items.field(description).type)
            img = items.field(image).type if image else None
            img_ok = img is not None and column_kind(img) == "list" and img.value_type == pa.float32()
            if desc_ok and img_ok:
                have.append("item_vectors")
            else:
                for c in vecs:
                    self.leave_out("items", c, "item vectors need both description (string, '' where none) and "
                                               "image_embedding (list<float32>, one length)")
        return have

    # features -----------------------------------------------------------------------------

    def feature(self, t: str, name: str) -> None:
        s = self.stats[t][name]
        kind = column_kind(s.type)
        if name in schema.ORACLE_COLUMNS:
            self.leave_out(t, name, "a simulator's true probability, not a feature")
            return
        if kind == "string" and t == "impressions" and name == "split":
            self.leave_out(t, name, f"not a split: it holds {sorted(s.values)[:5]}{' and nulls' if s.nulls else ''}, "
                                    "a split column holds only train, valid and test (pass --split COL for one)")
            return
        if kind in ("string", "bool"):  # categorical values as they are: the model's vocabulary maps them
            if s.nulls:
                self.leave_out(t, name, f"{s.nulls:,} nulls: fill them with a value (e.g. 'unknown') to use it")
                return
            if kind == "bool" and t == "impressions" and s.binary and not self.labels_given:
                self.leave_out(t, name, "a 0/1 column that is not a label (int8 and bool are label types): pass --label "
                                        f"{name} to predict it, or --use-case for the labels to use it as a feature")
                return
            if self.claim(t, name):
                self.features[t]["categorical"].append(name)
                self.types[t][name] = kind
            return
        if kind == "timestamp":
            self.leave_out(t, name, "a time is not a feature: derive numbers from it (hour, day of week, age in days) "
                                    "as int64 or float32 columns")
            return
        if kind not in ("int", "bool", "float"):
            self.leave_out(t, name, "not a feature type: categorical features are int64 codes, numerical float32")
            return
        if kind == "float":
            dtype = "float32"
            if s.nulls or s.nans:
                self.leave_out(t, name, f"{s.nulls + s.nans:,} nulls/NaNs: fill them with a number to use it")
                return
        else:
            dtype = "int64"
            if s.nulls:
                self.leave_out(t, name, f"{s.nulls:,} nulls: fill them with a code (e.g. max + 1) to use it")
                return
            if t == "impressions" and s.type == pa.int8() and s.binary:
                self.leave_out(t, name, "a 0/1 column that is not a label (int8 and bool are label types): pass --label "
                                        f"{name} to predict it, or store it as int64 to use it as a feature")
                return
        ok = self.typed(t, name, dtype)
        if ok is False:
            self.leave_out(t, name, f"{'numerical' if dtype == 'float32' else 'categorical'} features are {dtype}: "
                                    f"cast it to {dtype}, or rerun with --cast")
            return
        if self.claim(t, name):
            self.features[t]["categorical" if dtype == "int64" else "numerical"].append(name)

    def features_of(self, t: str, taken: set[str]) -> None:
        metadata = self.arrow[t].pandas_metadata or {}
        index = {c for c in metadata.get("index_columns", []) if isinstance(c, str)}
        for f in self.arrow[t]:
            if f.name in self.names.core(t) or f.name in taken:
                continue
            if f.name in _PLATFORM_NAMES:
                self.leave_out(t, f.name, f"'{f.name}' is the platform's name of a core column that another column "
                                          "plays here, so it cannot also name a feature")
                continue
            if f.name in index:
                self.leave_out(t, f.name, "a pandas index written with the table, not a feature (write the frame with "
                                          "to_parquet(index=False) to leave it out)")
                continue
            self.feature(t, f.name)

    def require_features(self) -> None:
        for side, tables in (("context", ("customers", "impressions")), ("item", ("items",))):
            for kind, dtype in (("categorical", "int64"), ("numerical", "float32")):
                if not any(self.features[t][kind] for t in tables):
                    files = " or ".join(self.file(t) for t in tables)
                    self.problems.append(f"no {side} {kind} feature: {files} needs a {dtype} column "
                                         f"({'codes >= 0' if dtype == 'int64' else 'numbers'}; a constant column will do)")


def draft_contract(data_dir: Path, name: str | None = None, labels: list[str] | None = None,
                   use_cases: list[str] | dict[str, str] | None = None, populations: list[str] | dict[str, str] | None = None,
                   funnel: list[str] | list[tuple[str, str]] | None = None, split: str | None = None,
                   cast: bool = False, oracles: list[str] | dict[str, str] | None = None,
                   files: list[str] | dict[str, str] | None = None, columns: list[str] | None = None,
                   task_tokens: list[str] | None = None) -> Draft:
    """A contract for the tables in `data_dir`, inferred from their schemas and one pass over their
    rows (see the module's docstring), with the columns left out and why.

    `labels`: label columns (default: every int8/bool 0/1 impressions column); `use_cases`: NAME=LABEL
    (default: one per label, named by upper-casing it); `populations`: NAME=LABEL, use case NAME is
    defined over the rows where LABEL is 1 (as CVR over clicks); `funnel`: 'a,b' pairs (b is 1
    only where a is); `split`: a train/valid/test column (default: one named 'split', else by time);
    `cast`: columns a type cast fixes are kept and cast by write_draft (else left out or refused);
    `oracles`: USE_CASE=COLUMN, the true probability of a use case's label where the logs are
    simulated (benchmarks compare with it; never a feature). `files`: TABLE=FILE where a table's
    file is not <table>.parquet; `columns`: [TABLE.]PART=COLUMN, the user's column for a core part
    (customer_id, event_timestamp, flow...) that is not recognised (grec.data.recognise).
    Raises DraftError naming every file, column and fix when no usable contract can be drafted."""
    use_case_pairs = _parse_pairs(use_cases, "--use-case")
    population_pairs = _parse_pairs(populations, "--population")
    oracle_pairs = _parse_pairs(oracles, "--oracle")
    funnel_pairs = _parse_pairs(funnel, "--funnel", ",")
    d = _Drafter(data_dir, cast, files, columns)
    d.core()
    flows = d.flows()
    tokens = d.task_tokens(list(task_tokens or []))

    given = list(labels or []) + [lab for _, lab in use_case_pairs + population_pairs] + [c for p in funnel_pairs for c in p]
    label_columns, taken = d.labels(given)
    split_column = d.split(split)
    oracle_columns = {uc: col for uc, col in oracle_pairs if d.oracle(uc, col)}
    taken = {*taken, *(c for c in (split, split_column) if c), *(col for _, col in oracle_pairs), *tokens}  # never features
    for c in label_columns + ([split_column] if split_column else []) + list(dict.fromkeys(oracle_columns.values())):
        d.claim("impressions", c)

    # use cases: the named ones, then one per other label (given with --label or --funnel, or
    # inferred) that no use case predicts nor is defined over
    chosen: dict[str, str] = {}
    for uc, lab in use_case_pairs:
        if uc in chosen:
            d.problems.append(f"--use-case {uc}={lab}: use case {uc} is named twice")
        chosen[uc] = lab
    asked = set(labels or []) | {c for pair in funnel_pairs for c in pair}
    defaults = [c for c in label_columns if not use_case_pairs or c in asked]
    for lab in defaults:
        only_a_population = lab in {pop for _, pop in population_pairs} and lab not in (labels or [])
        if lab not in chosen.values() and not only_a_population:
            uc = lab.upper()
            if uc in chosen:
                d.problems.append(f"use case {uc} (from label '{lab}') clashes with another of that name: "
                                  f"name it with --use-case NAME={lab}")
            chosen[uc] = lab
    pops: dict[str, str | None] = {uc: None for uc in chosen}
    for uc, lab in population_pairs:
        if uc not in chosen:
            d.problems.append(f"--population {uc}={lab}: no use case {uc} (use cases: {', '.join(chosen)}); "
                              f"define it with --use-case {uc}=LABEL")
        elif chosen[uc] == lab:
            d.problems.append(f"--population {uc}={lab}: use case {uc} predicts '{lab}' itself; its population is "
                              "another label (as CVR predicts purchases over clicked rows)")
        else:
            pops[uc] = lab
    for uc in chosen:
        if not uc or "+" in uc or uc != uc.strip():
            d.problems.append(f"use case name {uc!r}: task names are FLOW+USE_CASE, so a use case name has no '+'")
    for flow in flows:
        if "+" in flow:
            d.refuse("impressions", d.col("impressions", "flow"), f"value {flow!r} has a '+': task names are FLOW+USE_CASE; rename the flow")
    if not d.problems and not chosen:
        d.problems.append("no use case: pass --use-case NAME=LABEL or --label COL")
    if oracle_pairs and not d.problems and {uc for uc, _ in oracle_pairs} != set(chosen):
        d.problems.append(f"--oracle names {sorted(uc for uc, _ in oracle_pairs)}: a true probability is needed for "
                          f"every use case ({', '.join(chosen)}) or for none")

    # features: every other column of every table
    d.labels_given = bool(given)
    for t in ("customers", "items", "impressions"):
        d.features_of(t, taken if t == "impressions" else set())
    inputs = d.inputs()
    d.require_features()

    if not d.problems:
        impressions = d.data_dir / d.file("impressions")
        for a, b in funnel_pairs:
            bad = funnel_violations(impressions, a, b)
            if bad:
                d.problems.append(f"{impressions.name}: --funnel {a},{b}: {bad:,} rows have {b}=1 where {a} is not 1 "
                                  f"(a funnel pair says {b} happens only after {a}); drop the pair or fix the labels")
    if d.problems:
        unused = "".join(f"\n  - {u.line()}" for u in d.unused)
        raise DraftError(f"cannot draft a contract for {d.data_dir}:\n" + "\n".join(f"- {p}" for p in d.problems)
                         + (f"\nColumns it would leave out:{unused}" if unused else ""))

    if split_column is None:
        ts = d.stats["impressions"][d.col("impressions", "event_timestamp")]
        days = (ts.max - ts.min).total_seconds() / 86400 if ts.min is not None else 0
        d.notes.append(f"no split column: rows are split by time (the last 7 days are the test window, the 7 "
                       f"before them validation); the impressions span {days:.1f} days")
        if days < 15:
            d.notes.append("the impressions span less than 15 days: the time split leaves (almost) no training rows; "
                           "add a split column (train/valid/test) and pass --split COL")
    routes = d.routes(tokens) if tokens else flows
    tasks = TaskVocabulary(routes, tuple(chosen), dict(chosen), pops, oracle_columns, ("flow", *tokens))
    try:
        contract = Contract.define(name or Path(data_dir).resolve().name, d.features, tasks, funnel_pairs, split_column,
                                   source="drafted by grec data init (edit to cite where the data comes from)",
                                   inputs=inputs, names=_present_names(d.names.to_contract(), inputs),
                                   types=_present_types(d.types, d.features, inputs))
    except SchemaError as e:
        raise DraftError(f"cannot draft a contract for {d.data_dir}: {e}") from None
    used = {(t.file, c.stored) for t in contract.tables.values() for c in t.columns}
    casts = [c for c in d.casts if (c.file, c.column) in used]  # not those of columns left out after all
    return Draft(Path(data_dir), contract, d.rows, d.unused, casts, d.notes)


def _list_element(t: pa.DataType) -> str | None:
    """'int64' or 'string' where `t` is a list of integers or strings (a history), else None."""
    if column_kind(t) != "list":
        return None
    if t.value_type == pa.int64():
        return "int64"
    return "string" if column_kind(t.value_type) == "string" else None


def _present_types(types: dict, features: dict, inputs: list[str]) -> dict:
    """The contract's "types": those of the keys, of the features kept and of the inputs the source has."""
    kept = {c for kinds in features.values() for cols in kinds.values() for c in cols}
    keep = {"customer_id", "item_id", "impression_id", *kept, *(OPTIONAL_INPUTS["histories"]["impressions"]
                                                             if "histories" in inputs else ())}
    out = {t: {c: d for c, d in m.items() if c in keep} for t, m in types.items()}
    if "item_id" in out.get("items", {}):
        out["impressions"] = {"item_id": out["items"]["item_id"], **out.get("impressions", {})}
    return {t: m for t, m in out.items() if m}


def _present_names(names: dict, inputs: list[str]) -> dict:
    """The contract's "names" without the columns of inputs the source turned out not to have."""
    absent = {c for i, by_table in OPTIONAL_INPUTS.items() if i not in inputs for cols in by_table.values() for c in cols}
    columns = {t: {p: c for p, c in m.items() if p not in absent} for t, m in names["columns"].items()}
    return {"files": names["files"], "columns": {t: m for t, m in columns.items() if m}}


# ---------------------------------------------------------------------------------------------
# Writing


def refuse_existing(data_dir: Path, force: bool = False) -> None:
    path = Path(data_dir) / CONTRACT_FILE
    if path.exists() and not force:
        raise ContractExists(f"{path} exists; pass --force to replace it with a new draft (or edit it)")


def cast_tables(draft: Draft) -> list[Path]:
    """Rewrite each table with a column the contract needs in another type, whole and atomically
    (the other columns and the file's metadata unchanged)."""
    written = []
    for file in dict.fromkeys(c.file for c in draft.casts):
        path = draft.data_dir / file
        table = pq.read_table(path)
        for c in (c for c in draft.casts if c.file == file):
            i = table.schema.get_field_index(c.column)
            current, target = table.schema.field(i).type, c.arrow_type()
            try:
                column = table.column(i)
                if pa.types.is_dictionary(current):
                    column = column.cast(current.value_type)
                column = column.cast(target, safe=not pa.types.is_floating(target))
            except (pa.ArrowException, ValueError) as e:
                raise DraftError(f"{file}: column '{c.column}' cannot be cast from {type_name(current)} to "
                                 f"{type_name(target)} ({e}); convert it yourself") from None
            table = table.set_column(i, pa.field(c.column, target), column)
        written.append(write_parquet(path, table))
    return written


def write_draft(draft: Draft, force: bool = False) -> Path:
    """Write contract.json: first into a temporary folder beside it, read back there by the
    platform's reader, the tables cast where the draft needs it and checked against it, and only
    then renamed into place (nothing half-written, nothing the readers would refuse)."""
    from grec.data.tables import check_arrow_schema  # imports torch: only when writing

    refuse_existing(draft.data_dir, force)
    tmp = Path(tempfile.mkdtemp(prefix=".contract-", dir=draft.data_dir))
    target = draft.data_dir / CONTRACT_FILE

    def refused(e: SchemaError) -> DraftError:
        return DraftError(f"{target}: the draft does not read back ({str(e).replace(str(tmp), str(draft.data_dir))}); "
                          "nothing written")

    try:
        write_json(tmp / CONTRACT_FILE, draft.to_dict())
        try:
            contract = read_contract(tmp)
        except SchemaError as e:
            raise refused(e) from None
        if contract != draft.contract:
            raise DraftError(f"{target}: the draft reads back different from what was drafted; nothing written")
        cast_tables(draft)
        try:
            for table in contract.tables.values():
                path = draft.data_dir / table.file
                check_arrow_schema(pq.read_schema(path), table.stored_view(), str(path))
        except SchemaError as e:
            raise refused(e) from None
        os.replace(tmp / CONTRACT_FILE, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
