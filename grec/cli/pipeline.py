"""`grec pipeline`: the Kubeflow pipelines run locally, compiled, submitted and scheduled, and their summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from grec import settings
from grec.cli.common import console


app = typer.Typer(help="Kubeflow pipelines (training, monitoring): run locally, compile, submit, schedule.",
                           no_args_is_help=True)
PipelineArg = Annotated[str, typer.Argument(help="training | monitoring")]
ParamOpt = Annotated[Optional[list[str]], typer.Option("--param", help="Pipeline parameter NAME=VALUE (repeatable)")]
HostOpt = Annotated[str, typer.Option("--host", help="KFP API server URL, e.g. http://localhost:8080")]


@app.command("run")
def pipeline_run(
    name: PipelineArg,
    local: Annotated[bool, typer.Option("--local", help="Run here with kfp's local runner (required: use `submit` for a cluster)")] = False,
    param: ParamOpt = None,
    runner: Annotated[str, typer.Option(help="subprocess: each task a process of this environment; docker: each task "
                                             "a container of the component image, in the engine DOCKER_HOST names")] = "subprocess",
    verbose: Annotated[bool, typer.Option("--verbose", help="Print every task's streams here, not only to the log file")] = False,
):
    """Run a pipeline locally, task by task: one line per step, then its summary; every task's own
    output goes to a log file in $GREC_HOME/logs (its path is printed)."""
    import time

    from grec.pipeline.run import parse_params, run_local, task_outputs

    if not local:
        raise typer.BadParameter("only local runs start here: add --local, or use `grec pipeline submit --host URL`")
    params = parse_params(name, param or [])
    where = "in containers" if runner == "docker" else "locally"
    log = None if verbose else settings.state_dir() / "logs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    console.print(f"Running the {name} pipeline {where} ({', '.join(f'{k}={v}' for k, v in params.items()) or 'defaults'})"
                  + (f"; every step's output: {log}" if log else ""), soft_wrap=True, highlight=False)
    run_dir = run_local(name, params, runner=runner, log=log)
    outputs = task_outputs(run_dir)
    (print_training_summary if name == "training" else print_monitoring_summary)(outputs)
    console.print(f"Pipeline outputs: {run_dir}", soft_wrap=True)


def _read(outputs: dict, task: str, artifact: str) -> str:
    return Path(outputs[task]["artifacts"][artifact]["path"]).read_text()


def print_training_summary(outputs: dict) -> None:
    from grec.lifecycle.registry import Registry

    console.rule("Data checks")
    # the step stops the pipeline on any failure (its own error says which); passed, one line says what was checked
    checks = outputs["validate-data"]["artifacts"]["checks"]["metadata"]
    rows = outputs["validate-data"]["artifacts"]["tables"]["metadata"]
    tables = [k.removesuffix(".expectations") for k in checks if k != "tasks.expectations"]
    console.print(f"Passed: {sum(checks.values())} expectations on " + ", ".join(
        f"{t} ({rows[f'rows.{t}']:,} rows)" for t in tables) + " and the rows and positives of every task "
        "(the Data Docs: under Reports)", highlight=False, soft_wrap=True)
    features = outputs["build-features"]["artifacts"]["training_set"]["metadata"]
    lost = {k.removeprefix("left_out."): v for k, v in features.items() if k.startswith("left_out.")}
    console.print("Training set: " + ", ".join(f"{k} {features[f'rows.{k}']:,}" for k in ("train", "valid", "test"))
                  + " rows" + ("; left out for want of a feature value: " + "; ".join(f"{k}: {v:,} rows" for k, v in lost.items())
                               if lost else ""), highlight=False)
    for task in sorted(t for t in outputs if t.startswith("train-model")):  # one per model the pipeline trains
        model = outputs[task].get("artifacts", {}).get("model", {}).get("metadata", {})
        if "time_spent" in model:
            console.print(f"Trained {model['arch']}: {model['time_spent']}", highlight=False, soft_wrap=True)
    console.rule("GRec against the baseline and the incumbents (held-out rows)")
    console.print(_read(outputs, "evaluate-and-gate", "comparison"), highlight=False)
    console.rule("Gate")
    gate = json.loads(_read(outputs, "evaluate-and-gate", "gate"))
    failed = ", ".join(t["task"] for t in gate["tasks"] if not t["passed"])
    console.print(f"Decision: [bold]{gate['decision'].upper()}[/bold]" + (f" (failed: {failed})" if failed else "")
                  + "; " + ("; ".join(gate["reasons"]) if gate["reasons"] else "every judged task passed"), highlight=False)
    version = outputs["register-model"]["parameters"]["Output"]
    status = Registry(gate["challenger"]["name"]).status()
    console.print(f"Registered {status['name']} v{version}; aliases: "
                  + ", ".join(f"{a}=v{v}" for a, v in sorted(status["aliases"].items())), highlight=False)
    if "package-service" in outputs:
        bento = outputs["package-service"]
        console.print(f"Bento: [bold]{bento['parameters']['Output']}[/bold] ({bento['artifacts']['bento']['path']})", highlight=False)
    else:
        console.print("Bento: not built (the champion did not change)")
    _reports(outputs, (("validate-data", "data_docs"), ("evaluate-and-gate", "comparison"), ("evaluate-and-gate", "gate_report")))


def _reports(outputs: dict, which) -> None:
    """One line: the reports a user opens, as paths under the run's outputs folder (printed after)."""
    paths = [Path(outputs[task]["artifacts"][artifact]["path"]) for task, artifact in which]
    console.print("Reports (in the pipeline's outputs, below): " + ", ".join(str(Path(*p.parts[-2:])) for p in paths),
                  soft_wrap=True, highlight=False)


def print_monitoring_summary(outputs: dict) -> None:
    result = json.loads(_read(outputs, "drift-report", "result"))
    console.rule("Drift")
    console.print(f"Window {result['window']['start']} to {result['window']['end']} against {result['reference']['model']} "
                  f"v{result['reference']['version']}: [bold]{result['decision'].upper()}[/bold]", highlight=False)
    for reason in result["reasons"]:
        console.print(f"- {reason}", highlight=False)
    drifted = [f["column"] for f in result["features"] if f["drifted"]]
    console.print(f"Features drifted: {len(drifted)} of {len(result['features'])}; tasks with drifted scores: "
                  f"{sum(t['drifted'] for t in result['tasks'])} of {len(result['tasks'])}; served rows: {result['window']['served_rows']:,}")
    if result["decision"] == "drift":
        console.print(f"Marked {result['reference']['model']} v{result['reference']['version']} for retraining "
                      "(tag grec.retrain_requested=true)")
    quality = json.loads(_read(outputs, "quality-report", "result"))
    console.rule("Quality")
    judged = [t for t in quality["tasks"] if t["judged"]]
    console.print(f"As of {quality['as_of']}: [bold]{quality['decision'].upper()}[/bold]; judged {len(judged)} of "
                  f"{len(quality['tasks'])} tasks on {quality['window']['impressions']:,} impressions and "
                  f"{quality['window']['served_rows']:,} served rows shown", highlight=False)
    for reason in quality["reasons"]:
        console.print(f"- {reason}", highlight=False)
    if judged:
        from grec.monitoring.quality import interval_text

        worst = sorted(judged, key=lambda t: (t["window"]["auc"] - (t["gate_auc"] or t["window"]["auc"])))[:4]
        console.print("Furthest under the gate: " + "; ".join(
            f"{t['task']} {interval_text(t['window']['auc'], t['window']['auc_ci'])} (gate {t['gate_auc'] or '-'})" for t in worst),
            highlight=False)
    _reports(outputs, [*(("drift-report", artifact) for artifact in ("report", "summary", "result")),
                       *(("quality-report", artifact) for artifact in ("report", "summary", "result"))])


@app.command("compile")
def pipeline_compile(
    name: PipelineArg,
    out: Annotated[Optional[Path], typer.Option(help="YAML file [default: $GREC_HOME/pipelines/<name>.yaml]")] = None,
):
    """Compile a pipeline to the YAML a KFP API server runs."""
    from grec.pipeline.run import compile_pipeline

    path = compile_pipeline(name, out or settings.state_dir() / "pipelines" / f"{name}.yaml")
    console.print(f"Wrote {path}", soft_wrap=True)


@app.command("submit")
def pipeline_submit(name: PipelineArg, host: HostOpt, param: ParamOpt = None):
    """Start one run on a KFP API server."""
    from grec.pipeline.run import parse_params, submit

    console.print(f"Submitted run {submit(name, host, parse_params(name, param or []))} to {host}")


@app.command("schedule")
def pipeline_schedule(
    name: PipelineArg,
    host: HostOpt,
    cron: Annotated[str, typer.Option(help="Six-field cron, seconds first: '0 0 3 * * 1' = Mondays 03:00")],
    param: ParamOpt = None,
):
    """Create a recurring run on a KFP API server (one run at a time)."""
    from grec.pipeline.run import parse_params, schedule

    console.print(f"Recurring run {schedule(name, host, cron, parse_params(name, param or []))} on {host} ({cron})")
