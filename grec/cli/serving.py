"""The ranking service: package the champion as a Bento (`grec package`), serve it (`grec serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from grec import settings
from grec.cli.common import NameOpt, TrackingOpt, console


def package(
    name: NameOpt = "grec",
    alias: Annotated[str, typer.Option(help="Registry alias to package")] = "champion",
    tracking_uri: TrackingOpt = None,
):
    """Import the registry's champion into BentoML and `bentoml build` the ranking service; prints the Bento tag."""
    from grec.serving.bento import build, import_champion

    model = import_champion(name, alias, tracking_uri)
    with console.status(f"Building the Bento with {model.tag}"):
        tag = build(str(model.tag))
    console.print(f"Model {model.tag} ({name}@{alias}); Bento [bold]{tag}[/bold]", highlight=False)
    print(tag)


def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    name: NameOpt = "grec",
    alias: Annotated[str, typer.Option(help="Registry alias to serve")] = "champion",
    tracking_uri: TrackingOpt = None,
    challenger: Annotated[Optional[str], typer.Option(
        help="An A/B test: a registered NAME@ALIAS or NAME:VERSION that a share of the customers are ranked by")] = None,
    challenger_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of the customers it ranks for")] = 0.5,
    experiment: Annotated[Optional[str], typer.Option(help="The A/B test's name (seeds the split) [default: the challenger]")] = None,
):
    """Serve the ranking service locally (BentoML) with the registry's champion and the Feast online
    store, following the alias: a new champion (a promotion, a rollback) is served within seconds,
    swapped in without a refused request. With --challenger, an A/B test: each customer is ranked
    by one arm, the same one on every request (a stable hash), and the log names the arm. SIGTERM or
    Ctrl-C stops the server too (its prediction log flushed), then this command."""
    import os
    import sys

    from grec.processes import run_server
    from grec.serving.bento import REPO, import_champion

    model = import_champion(name, alias, tracking_uri)
    env = os.environ | {"GREC_BENTO_MODEL": str(model.tag), "GREC_HOME": str(settings.state_dir()),
                        "GREC_SERVE_FOLLOW": f"{name}@{alias}"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    if challenger:
        from grec.lifecycle.registry import parse_ref
        from grec.serving.experiment import Split

        parse_ref(challenger), Split(experiment or challenger, challenger_share)  # refused here, not in a worker
        env |= {"GREC_SERVE_CHALLENGER": challenger, "GREC_SERVE_CHALLENGER_SHARE": str(challenger_share),
                "GREC_SERVE_EXPERIMENT": experiment or challenger}
    console.print(f"Serving {model.tag} ({name}@{alias}) on http://{host}:{port}", highlight=False)
    bentoml = Path(sys.executable).with_name("bentoml")
    raise typer.Exit(run_server([str(bentoml), "serve", "grec.serving.service:GRecRanker", "--host", host,
                                 "--port", str(port), "--working-dir", str(REPO)], env))
