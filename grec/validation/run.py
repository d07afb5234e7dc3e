"""Run the suites on a folder of raw tables: a JSON report, Great Expectations' HTML Data Docs,
and for every failed expectation its table, column, count and a few offending rows."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from grec import settings
from grec.data.contract import read_contract
from grec.data.tables import read_parquet
from grec.data.schema import SchemaError, Table
from grec.io import write_json
from grec.validation.offline_docs import make_offline
from grec.validation.suites import ValidationPolicy, table_expectations, task_counts, task_expectations, validation_frame

EXAMPLES = 3  # offending rows shown per failed expectation


@dataclass
class Failure:
    table: str
    expectation: str
    column: str
    unexpected: int | None  # rows breaking it (None for table-level checks such as a mean)
    detail: str  # observed value, or example rows
    examples: list[dict] = field(default_factory=list)

    def line(self) -> str:
        count = "" if self.unexpected is None else f"{self.unexpected:,} rows, "
        return f"{self.table}.{self.column}: {self.expectation} failed ({count}{self.detail})"


@dataclass
class ValidationReport:
    success: bool
    data: str
    tables: dict[str, dict]  # table -> {"rows", "expectations", "success"}
    failures: list[Failure]
    html: str
    json: str = ""
    warnings: list[str] = field(default_factory=list)  # e.g. columns the contract does not name
    left_out: dict = field(default_factory=dict)  # rows a window snapshot left out, by what (grec.pipeline.steps)


def _context(root: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _column(config) -> str:
    kwargs = config.kwargs
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return ",".join(kwargs.get("column_list", [])) or "(table)"


def _failure(table: str, result, frame: pd.DataFrame) -> Failure:
    config, res = result.expectation_config, result.result
    if result.exception_info and result.exception_info.get("raised_exception"):
        return Failure(table, config.type, _column(config), None,
                       f"could not be evaluated: {result.exception_info.get('exception_message')}")
    indices = res.get("unexpected_index_list") or []
    examples = [frame.loc[i].drop(labels=[c for c in frame.columns if c.endswith("__length")]).to_dict()
                for i in indices[:EXAMPLES] if not isinstance(i, dict) and i in frame.index]
    if "unexpected_count" in res:
        shown = res.get("partial_unexpected_list", [])[:EXAMPLES]
        return Failure(table, config.type, _column(config), int(res["unexpected_count"]),
                       f"e.g. values {shown}", examples)
    return Failure(table, config.type, _column(config), None, f"observed {res.get('observed_value')!r}")


def _validate(context, name: str, frame: pd.DataFrame, expectations: list):
    import great_expectations as gx

    source = context.data_sources.add_or_update_pandas("grec")
    asset = next((a for a in source.assets if a.name == name), None) or source.add_dataframe_asset(name)
    batch = next(iter(asset.batch_definitions), None) or asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=f"grec_{name}", expectations=expectations))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"grec_{name}", data=batch, suite=suite))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=f"grec_{name}", validation_definitions=[definition], result_format={"result_format": "COMPLETE"}))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    return next(iter(result.run_results.values()))


def _read(data_dir: Path, table: Table) -> pd.DataFrame:
    name = table.name
    path = data_dir / table.file
    if not path.exists():
        raise SchemaError(f"{path}: file not found (expected the '{name}' table)")
    # Types are the suites' business; a file without the contract's columns cannot be checked at all.
    arrow = read_parquet(path)
    missing = [c for c in table.names() if c not in arrow.schema.names]
    if missing:
        raise SchemaError(f"{path}: missing columns {missing} of the '{name}' table")
    return arrow.to_pandas()


def unknown_columns(data_dir: Path, tables: dict[str, Table], frames: dict[str, pd.DataFrame]) -> list[str]:
    """One line per table with columns its contract does not name (read by nothing downstream)."""
    lines = []
    for name, table in tables.items():
        extra = [c for c in frames[name].columns if c not in table.names()]
        if extra:
            lines.append(f"{Path(data_dir) / table.file}: columns {extra} are not in the '{name}' table's contract; "
                         "nothing reads them")
    return lines


def validate(data_dir: Path, policy: ValidationPolicy | None = None, out_dir: Path | None = None) -> ValidationReport:
    """Validate every raw table in `data_dir`; write report.json and the Data Docs under `out_dir`."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    data_dir, policy = Path(data_dir), policy or ValidationPolicy()
    out_dir = Path(out_dir) if out_dir else settings.validation_dir() / data_dir.name
    context = _context(out_dir)
    tables, failures = {}, []
    contract = read_contract(data_dir)
    # every table as its file has it: the suites, the failures and the Data Docs name the user's columns
    stored = {name: table.stored_view() for name, table in contract.tables.items()}
    frames = {name: _read(data_dir, table) for name, table in stored.items()}
    warnings = unknown_columns(data_dir, stored, frames)
    if warnings and policy.strict_columns:
        failures += [Failure(line.split(":")[0], "columns_in_contract", "(unknown)", None, line) for line in warnings]
    checks = [(name, validation_frame(stored[name], frame)) for name, frame in frames.items()]
    for name, frame in checks:
        expectations = table_expectations(stored[name], frame, policy, contract)
        result = _validate(context, name, frame, expectations)
        tables[name] = {"rows": len(frame), "expectations": len(expectations), "success": bool(result.success)}
        failures += [_failure(name, r, frame) for r in result.results if not r.success]
    tasks = task_counts(frames["impressions"], contract.tasks, flow=contract.user_name("impressions", "flow"))
    result = _validate(context, "tasks", tasks, task_expectations(policy))
    tables["tasks"] = {"rows": len(tasks), "expectations": 2, "success": bool(result.success)}
    for r in (r for r in result.results if not r.success):
        failure = _failure("tasks", r, tasks)
        failure.detail += f"; tasks: {tasks.loc[tasks[failure.column] < r.expectation_config.kwargs['min_value'], 'task'].tolist()}"
        failures.append(failure)
    context.build_data_docs()  # once for all four validations
    html = context.get_docs_sites_urls()[0]["site_url"]
    make_offline(Path(html.removeprefix("file://")).parent)  # renders without the internet
    report = ValidationReport(not failures, str(data_dir), tables, failures, html, warnings=warnings)
    report.json = str(write_json(out_dir / "report.json", asdict(report), default=str))
    return report

