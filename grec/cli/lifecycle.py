"""The model registry (`grec registry`) and the MLflow UI over runs, plots and the registry (`grec ui`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from grec.cli.common import NameOpt, TrackingOpt, console


app = typer.Typer(help="The model registry: aliases challenger, champion, previous-champion.", no_args_is_help=True)
ActorOpt = Annotated[Optional[str], typer.Option("--decided-by", help="Who or what decides, recorded on the version [default: user@host]")]


@app.command("status")
def registry_status(name: NameOpt = "grec", tracking_uri: TrackingOpt = None,
                    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False):
    """Versions, their aliases, test AUC and the gate's decisions."""
    from grec.lifecycle.registry import Registry

    status = Registry(name, tracking_uri).status()
    if as_json:
        print(json.dumps(status, indent=2))
        return
    table = Table(title=f"{name} in {status['tracking_uri']}")
    for col in ("version", "aliases", "created", "test AUC (mean of use cases)", "gate", "promoted", "rolled back"):
        table.add_column(col, no_wrap=True)
    for v in status["versions"]:
        tags, auc = v["tags"], v["test_mean_auc"]

        def when(key):  # ISO stamp -> "2026-11-23 18:46"
            return tags[key][:16].replace("T", " ") if key in tags else "-"

        table.add_row(v["version"], ", ".join(v["aliases"]), v["created"][:16].replace("T", " "),
                      "-" if auc is None else f"{auc:.4f}", tags.get("grec.gate.decision", "-"),
                      when("grec.promoted_at"), when("grec.rolled_back_at"))
    console.print(table)


# `grec registry promote`'s exit status when the gate refuses the version: a script or a pipeline
# step tells a refusal (nothing changed, by decision) from a promotion (0) and from an error (1).
REFUSED = 3


@app.command("promote")
def registry_promote(
    version: Annotated[Optional[str], typer.Option(help="Version to gate [default: the challenger]")] = None,
    held_out: Annotated[Optional[Path], typer.Option(
        "--held-out", help="Training set or raw tables whose test week judges [default: the version's training data]")] = None,
    policy: Annotated[Optional[Path], typer.Option(help="Gate policy file [default: grec/lifecycle/gate_policy.yaml]")] = None,
    name: NameOpt = "grec",
    decided_by: ActorOpt = None,
    tracking_uri: TrackingOpt = None,
):
    """Gate a version against the champion on the held-out week; promote it if the gate passes.
    Exit status: 0 promoted (or already the champion), 3 refused by the gate, 1 an error."""
    from grec.lifecycle.gate import GatePolicy
    from grec.lifecycle.registry import Registry
    from grec.lifecycle.store import ui_command

    with console.status("Scoring the held-out week with the challenger and the champion"):
        result = Registry(name, tracking_uri).promote(version, held_out, GatePolicy.load(policy), decided_by)
    if result.report is not None:
        console.print(result.report.markdown(), highlight=False, soft_wrap=True)
        console.print(f"Gate report: {result.report_paths[1]} and {result.report_paths[0].name}")
    mark = "[green]PROMOTED[/green]" if result.changed else ("[red]REFUSED[/red]" if result.report else "[yellow]UNCHANGED[/yellow]")
    console.print(f"{mark} {name} v{result.version}: {result.message}. Champion: v{result.champion_after or '-'}", highlight=False)
    console.print(f"Browse the registry with: {ui_command(tracking_uri)}", soft_wrap=True)
    if result.report is not None and not result.changed:
        raise typer.Exit(REFUSED)


@app.command("rollback")
def registry_rollback(
    reason: Annotated[str, typer.Option(help="Why, recorded on the demoted version")] = "",
    name: NameOpt = "grec",
    decided_by: ActorOpt = None,
    tracking_uri: TrackingOpt = None,
):
    """Make the previous champion the champion again."""
    from grec.lifecycle.registry import Registry

    result = Registry(name, tracking_uri).rollback(decided_by, reason)
    console.print(f"{result.message} (was v{result.champion_before})")


def ui(
    port: Annotated[int, typer.Option(help="HTTP port (loopback only)")] = 5000,
    tracking_uri: TrackingOpt = None,
):
    """The MLflow UI for this state folder's runs and registry, opened on the project's experiment
    in its model-training view (runs, plots, models); a tracking server's own UI is linked instead.
    SIGTERM or Ctrl-C stops the UI's server too, then this command."""
    import os
    import sys

    from grec.lifecycle.store import configure, experiment_id, experiment_url
    from grec.processes import run_server

    uri = configure(tracking_uri)
    experiment = experiment_id()
    if uri.startswith(("http://", "https://")):
        console.print(f"The tracking server's UI: {experiment_url(experiment, uri)}", soft_wrap=True)
        return
    console.print(f"MLflow UI: {experiment_url(experiment, f'http://127.0.0.1:{port}')}  (Ctrl-C stops it)", soft_wrap=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    # one worker: a UI on loopback serves one person, and MLflow's default of 4 worker processes
    # takes four times the memory and, on a small machine, several times as long to start. No job
    # runner (MLflow's GenAI jobs, which the platform does not use; as deploy/k8s/mlflow.yaml): on by
    # default it adds 8 processes, 2 GB and 27 CPU-seconds in the 30 s after the UI answers
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    raise typer.Exit(run_server([str(mlflow), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1"], env))
