"""The platform's images and its pipelines in containers: image sizes per layer, build times cold
(no layer cache) and cached, and the training and monitoring pipelines' wall time with every
component in a container (kfp's DockerRunner) beside the subprocess runner on the same data.

    python benchmarks/containers.py            # writes benchmarks/results/containers.{json,md}

Needs root (Debian's dockerd, started by deploy/local/containers.py) and the package index; the
cold build drops the engine's build cache and the project's images first (not the base image).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_results  # noqa: E402

from deploy.local import containers  # noqa: E402

NAME = "containers"
END, MONITOR = "2026-07-06", ("2026-07-06", "2026-07-13")


def _timed_cli(home: Path, engine, *args: str) -> float:
    env = {**os.environ, "GREC_HOME": str(home), "DOCKER_HOST": engine.host}
    env.pop("MLFLOW_TRACKING_URI", None)
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "grec.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"grec {' '.join(args)} failed: {done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - began


def main(impressions: int = 40_000, epochs: int = 1):
    from components import BASE_IMAGE
    from grec.data.simulate import SimulationConfig, simulate_to

    engine, started = containers.start()
    try:
        for tag in (BASE_IMAGE, f"{BASE_IMAGE}-spark"):
            engine.docker("image", "rm", "-f", tag, check=False)
        engine.docker("builder", "prune", "-af")
        base = containers.LOCAL_BASE if not engine.has_image(containers.PUBLIC_BASE) else containers.PUBLIC_BASE
        builds = {"project, cold": containers.build_image(engine, BASE_IMAGE, "project", base),
                  "project, cached (nothing changed)": containers.build_image(engine, BASE_IMAGE, "project", base),
                  "spark variant (on the cached project stages)": containers.build_image(engine, f"{BASE_IMAGE}-spark",
                                                                                         "spark", base)}
        layers = {"project": containers.layers(engine, BASE_IMAGE), "spark": containers.layers(engine, f"{BASE_IMAGE}-spark")}
        pipelines = {}
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder) / "shop"
            simulate_to(data, SimulationConfig(n_impressions=impressions, train_weeks=4, monitor_weeks=1, seed=2))
            policy = Path(folder) / "gate_policy.yaml"  # floors off: a one-epoch model is promoted, so monitoring has a champion
            policy.write_text("version: 1\nfloors: {default: 0.0}\n")
            for runner in ("subprocess", "docker"):
                home = Path(folder) / runner
                pipelines[runner] = {
                    "training": _timed_cli(home, engine, "pipeline", "run", "training", "--local", "--runner", runner,
                                           "--param", f"data={data}", "--param", f"end={END}", "--param", f"epochs={epochs}",
                                           "--param", "min_task_positives=1", "--param", f"gate_policy={policy}"),
                    "monitoring": _timed_cli(home, engine, "pipeline", "run", "monitoring", "--local", "--runner", runner,
                                             "--param", f"data={data}", "--param", f"start={MONITOR[0]}",
                                             "--param", f"end={MONITOR[1]}")}
            bento = next((Path(folder) / "docker").glob("pipelines/grec-training-*/package-service/bento"))
            builds["ranker (on the cached runtime stage)"] = containers.build_ranker(engine, bento, "grec-ranker:benchmark")
            layers["ranker"] = containers.layers(engine, "grec-ranker:benchmark")
    finally:
        if started:
            containers.stop(engine.root)
    payload = {"machine": machine(), "base": base, "impressions": impressions, "epochs": epochs, "builds": builds,
               "layers": layers, "pipelines": pipelines,
               "command": "python benchmarks/containers.py"}
    json_path, md_path = write_results(NAME, payload, markdown(payload))
    typer.echo(f"wrote {json_path} and {md_path}")


def markdown(p: dict) -> str:
    m = p["machine"]
    lines = ["# The images and the pipelines in containers", "",
             f"`{p['command']}` on {m['cpu']} ({m['cores']} cores), Python {m['python']}, torch {m['torch']}; "
             f"base image `{p['base']}` (built from Debian's packages: no registry here). Docker 20.10 (Debian's), "
             "BuildKit, overlay2.", "", "## Builds", "", "| image | seconds | size |", "|---|---:|---:|"]
    for name, b in p["builds"].items():
        lines.append(f"| {name} | {b['seconds']:.0f} | {b['size'] / 1e9:.2f} GB |")
    for name, rows in p["layers"].items():
        lines += ["", f"## Layers of {name} (oldest first)", "", "| size | made by |", "|---:|---|"]
        for row in rows:
            made_by = row["made_by"].replace("|", "\\|").replace("/bin/sh -c ", "")[:140]
            lines.append(f"| {row['size']} | `{made_by}` |")
    pipes = p["pipelines"]
    lines += ["", f"## Pipelines: storefront, {p['impressions']:,} impressions, {p['epochs']} epoch", "",
              "| pipeline | subprocess runner (s) | every component in a container (s) | ratio |", "|---|---:|---:|---:|"]
    for name in ("training", "monitoring"):
        sub, dock = pipes["subprocess"][name], pipes["docker"][name]
        lines.append(f"| {name} | {sub:.0f} | {dock:.0f} | {dock / sub:.2f}x |")
    lines += ["", "One run of each, the subprocess runner first (each in a fresh state folder, MiniLM encoding the "
              "texts in both); not an A/B in turns, so the order (a cold page cache for the first) is in these "
              "figures. What they show: running every step in its own container costs no measurable time here."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    typer.run(main)
