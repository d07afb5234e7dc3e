"""An online A/B test on the simulated storefront: the ranking service's split between two registered
models, served to the world the logs came from, and what each arm's customers then did.

`run_experiment` draws requests from a window of the world (grec.data.simulate_online: customer,
route, page, query, candidate set), splits the customers between a control and a treatment model
by the service's own stable hash (grec.serving.experiment.Split), ranks each request with its arm's
model through the service's ranking path (grec.serving.ranker.Ranker: the online store, the task's
sub-network) and logs it as the service does (grec.serving.prediction_log, with its arm), shows
each ranking's first slots to the world, which draws the outcomes, and writes them as a batch of
impressions in the data folder's layout (`grec data append` adds it: the next training reads what
was served). The report is read back from the logs: the served rows joined with the impressions
(grec.monitoring.outcomes), per task and arm the conversions per 1,000 requests (the task's label
among the shown items), with 95% intervals from a bootstrap over customers (the unit the split
randomizes), and the treatment's lift over the control.

Each request is ranked for one use case, the model's use cases in turn by request number, so every
task (route x use case) gets a share of the traffic; a task's conversions count its own label.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.contract import as_stored, read_contract
from grec.data.simulate_online import Storefront
from grec.io import atomic_folder, write_json, write_parquet
from grec.monitoring.outcomes import join_outcomes
from grec.serving.experiment import CHALLENGER, CHAMPION, Split

BOOTSTRAP = 1000
MIN_CONVERSIONS = 10  # both arms together; fewer reads nothing (the bootstrap of a handful of events is not an interval)
ARMS = (CHAMPION, CHALLENGER)  # control, treatment


@dataclass(frozen=True)
class ExperimentConfig:
    name: str  # seeds the split (a new name reshuffles who sees which arm)
    control: str  # registry NAME:VERSION or NAME@ALIAS: the champion arm
    treatment: str  # the challenger arm
    start: str  # the window requests are drawn from, [start, end), within the world's time
    end: str
    requests: int = 20_000
    treatment_share: float = 0.5
    seed: int = 0  # of the requests and the outcomes


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    models: dict[str, str]  # arm -> name:vN
    tasks: list[dict] = field(default_factory=list)  # per task and arm (see `report`)
    use_cases: list[dict] = field(default_factory=list)  # pooled over routes
    requests: dict[str, int] = field(default_factory=dict)
    impressions: int = 0
    request_prefix: str = ""  # request r of this run is logged as f"{request_prefix}{r}"

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "models": self.models, "requests": self.requests,
                "impressions": self.impressions, "tasks": self.tasks, "use_cases": self.use_cases}


def _next_impression_id(data_dir: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = read_contract(data_dir).tables["impressions"]
    column = table.column("impression_id").stored  # the user's name for it
    ids = pq.read_table(Path(data_dir) / table.file, columns=[column])[column]
    return int(pc.max(ids).as_py()) + 1 if len(ids) else 0


def run_experiment(data_dir: Path, config: ExperimentConfig, out: Path, log=print,
                   log_dir: Path | None = None) -> ExperimentResult:
    """Serve config.requests requests of the world of `data_dir` to the two arms; writes under `out`:
    predictions/ (the service's log; `log_dir` instead where given), batch/ (the impressions shown,
    in the folder's layout), result.json and result.md."""
    from grec.features.store import OnlineReader
    from grec.lifecycle.registry import load_ref
    from grec.serving.prediction_log import PredictionLog, read_log
    from grec.serving.ranker import RankRequest, Ranker

    world = Storefront.of(data_dir)
    requests = world.requests(pd.Timestamp(config.start), pd.Timestamp(config.end), config.requests, config.seed)
    split = Split(config.name, config.treatment_share)
    reader = OnlineReader()
    rankers, models = {}, {}
    for arm, value in zip(ARMS, (config.control, config.treatment)):
        model, spec, name, version = load_ref(value)
        rankers[arm], models[arm] = Ranker(model, spec, reader), f"{name}:v{version}"
    tasks = rankers[CHAMPION].spec.tasks
    if rankers[CHALLENGER].spec.tasks.to_dict() != tasks.to_dict():
        raise ValueError(f"{config.control} and {config.treatment} serve different tasks; an A/B compares one set")
    out = Path(out)
    log_dir = Path(log_dir or out / "predictions")
    prediction_log = PredictionLog(log_dir, flush_rows=10_000, flush_seconds=3600)
    frame, ranked = requests.frame, []
    prefix = f"{config.name}-{uuid.uuid4().hex[:8]}-"  # a run's own ids, even beside another run's in one log
    context_columns = [c for c in rankers[CHAMPION].spec.impression_context if c in frame]
    for r, row in enumerate(frame.itertuples(index=False)):
        row = row._asdict()
        arm = split.arm(row["customer_id"])
        ranker = rankers[arm]
        use_case = tasks.use_cases[r % len(tasks.use_cases)]
        route = tasks.route_of(row)
        result = ranker.rank(RankRequest(row["customer_id"], route, use_case, row["candidates"], row["search_query"],
                                         {c: row[c] for c in context_columns}))
        prediction_log.append(result.log_row(f"{prefix}{r}", row["customer_id"], use_case, models[arm],
                                             row["event_timestamp"].to_pydatetime(), arm=arm,
                                             experiment=config.name))
        ranked.append(result.item_ids)
        if (r + 1) % 5000 == 0:
            log(f"  {r + 1:,} of {len(frame):,} requests served")
    prediction_log.close()
    shown = world.show(requests, ranked, config.seed, first_id=_next_impression_id(data_dir))
    table = read_contract(data_dir).tables["impressions"]
    with atomic_folder(out / "batch") as batch:  # the folder's own layout: `grec data append` takes it
        write_parquet(batch / table.file, as_stored(shown, table))
    served = read_log(log_dir)
    if len(served):  # this run's requests (the service's own log holds others, and /score rows without ids)
        served = served[served["request_id"].str.startswith(prefix, na=False)]
    joined = join_outcomes(served, shown, tasks)
    result = ExperimentResult(config, models, impressions=len(shown), request_prefix=prefix,
                              requests={arm: int((served.drop_duplicates("request_id")["arm"] == arm).sum())
                                        for arm in ARMS})
    result.tasks, result.use_cases = report(joined, tasks, config.seed)
    write_json(out / "result.json", result.to_dict())
    (out / "result.md").write_text(markdown(result))
    return result


def conversions(joined: pd.DataFrame, tasks) -> pd.DataFrame:
    """One row per served request: its arm, customer, task, use case and the conversions of its
    use case's label among the items it showed."""
    joined = joined.assign(label=0.0)
    for use_case in tasks.use_cases:
        column = tasks.labels[use_case]
        rows = joined["use_case"] == use_case
        joined.loc[rows, "label"] = joined.loc[rows, column].fillna(0).astype(float) if column in joined else 0.0
    joined = joined.assign(task=tasks.routes_of(joined).astype(str) + "+" + joined["use_case"].astype(str))
    return joined.groupby("request_id", sort=False).agg(
        arm=("arm", "first"), customer_id=("customer_id", "first"), task=("task", "first"),
        use_case=("use_case", "first"), conversions=("label", "sum"))


def _per_1000(per_request: pd.DataFrame, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Conversions per 1,000 requests and its bootstrap draws, resampling customers (Poisson weights)."""
    by_customer = per_request.groupby("customer_id").agg(n=("conversions", "size"), c=("conversions", "sum"))
    n, c = by_customer["n"].to_numpy(float), by_customer["c"].to_numpy(float)
    weights = rng.poisson(1.0, (BOOTSTRAP, len(n)))
    draws = 1000 * (weights @ c) / np.maximum(weights @ n, 1)
    return 1000 * c.sum() / max(n.sum(), 1), draws


def report(joined: pd.DataFrame, tasks, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Per task and per use case (pooled over routes): each arm's requests, conversions, conversions
    per 1,000 requests [95% interval], the treatment's lift over the control [95% interval], and the
    verdict, read on the interval of the difference (treatment - control per 1,000 requests: defined
    where an arm converted nothing, where the ratio's is not) and only with MIN_CONVERSIONS."""
    rng = np.random.default_rng(seed)
    per_request = conversions(joined, tasks)
    out: dict[str, list[dict]] = {"task": [], "use_case": []}
    order = {"task": [tasks.task_name(t) for t in range(tasks.n_tasks)], "use_case": list(tasks.use_cases)}
    for level in ("task", "use_case"):
        groups = dict(list(per_request.groupby(level, sort=False)))
        for name in [n for n in order[level] if n in groups]:  # the model's order: route-major, use cases in turn
            group = groups[name]
            row: dict = {level: name}
            draws = {}
            for arm in ARMS:
                part = group[group["arm"] == arm]
                rate, draws[arm] = _per_1000(part, rng)
                row[arm] = {"requests": len(part), "conversions": int(part["conversions"].sum()), "per_1000": rate,
                            "interval": [float(np.quantile(draws[arm], 0.025)), float(np.quantile(draws[arm], 0.975))]}
            control, treatment = row[CHAMPION]["per_1000"], row[CHALLENGER]["per_1000"]
            lift = draws[CHALLENGER] / np.where(draws[CHAMPION] > 0, draws[CHAMPION], np.nan) - 1
            row["lift"] = treatment / control - 1 if control > 0 else None
            finite = lift[np.isfinite(lift)]
            row["lift_interval"] = ([float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]
                                    if len(finite) else None)
            difference = draws[CHALLENGER] - draws[CHAMPION]
            row["difference"] = treatment - control
            row["difference_interval"] = [float(np.quantile(difference, 0.025)), float(np.quantile(difference, 0.975))]
            row["verdict"] = _verdict(row)
            out[level].append(row)
    return out["task"], out["use_case"]


def _verdict(row: dict) -> str:
    if row[CHAMPION]["conversions"] + row[CHALLENGER]["conversions"] < MIN_CONVERSIONS:
        return "too few conversions"
    lo, hi = row["difference_interval"]
    return "treatment ahead" if lo > 0 else "control ahead" if hi < 0 else "level"


def _rate(cell: dict) -> str:
    lo, hi = cell["interval"]
    return f"{cell['per_1000']:.2f} [{lo:.2f}, {hi:.2f}] ({cell['conversions']:,} in {cell['requests']:,})"


def lift_text(row: dict) -> str:
    """The lift [interval] and the verdict, as a table cell."""
    if row["lift"] is None or row["lift_interval"] is None:
        return f"- {row['verdict']}"
    lo, hi = row["lift_interval"]
    return f"{row['lift']:+.1%} [{lo:+.1%}, {hi:+.1%}] {row['verdict']}"


def markdown(result: ExperimentResult, labels: dict[str, str] | None = None) -> str:
    """The result as tables; `labels` (arm -> a name for its model) head the columns beside the versions."""
    c = result.config
    control, treatment = (f"{labels[arm]} ({result.models[arm]})" if labels else result.models[arm] for arm in ARMS)
    lines = [f"# A/B {c.name}: {treatment} (treatment) against {control} (control)", "",
             f"Requests {sum(result.requests.values()):,} drawn from [{c.start}, {c.end}) (seed {c.seed}), "
             f"{c.treatment_share:.0%} of the customers to the treatment by a stable hash; "
             f"{result.impressions:,} impressions shown. Cells: conversions (the task's label among the shown "
             "items) per 1,000 requests [95% bootstrap interval over customers] (conversions in requests); "
             "lift: treatment over control [95% interval]; the verdict reads the interval of the difference, and needs "
             f"{MIN_CONVERSIONS} conversions in the two arms.", ""]
    for level, rows in (("use case", result.use_cases), ("task", result.tasks)):
        lines += [f"| {level} | {control} | {treatment} | lift |", "|---|---:|---:|---|"]
        key = "use_case" if level == "use case" else "task"
        lines += [f"| {row[key]} | {_rate(row[CHAMPION])} | {_rate(row[CHALLENGER])} | {lift_text(row)} |" for row in rows]
        lines.append("")
    return "\n".join(lines)
