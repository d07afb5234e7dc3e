"""Why the networks sit where they do: GRec task-sentence and MMoE epoch by epoch, and GRec with
more capacity, more experts and up-sampled sparse tasks, on the incumbents benchmark's storefront.

Each variant trains once (model seed 0) for `--epochs` epochs without early stopping (patience =
epochs), and after every epoch scores the validation week and the test week. The table shows, per
variant, the epoch each early-stopping criterion would keep (lowest validation log-loss, the
platform's; highest validation mean AUC) and the test mean AUC over the pooled use cases at those
epochs and at the last one; the ceiling variant is fitted to the true probabilities (and selected on
their cross-entropy), the reachable ceiling at this size. Model selection reads the validation columns only; the test columns
say what a choice would have cost. One seed: read the differences against the incumbents run's
seed spread (about 0.002 on mean AUC) and its bootstrap intervals (about +-0.004 paired).

    python benchmarks/network_limits.py                 # the committed run
    python benchmarks/network_limits.py --impressions 800000 --epochs 3 --variants GRec --name network_limits_800k
    python benchmarks/network_limits.py --impressions 100000 --epochs 2 --variants "GRec,MMoE"   # a quick look
    python benchmarks/network_limits.py --variants "GRec on true probabilities,MMoE on true probabilities" --name network_limits_ceilings
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_results  # noqa: E402

NAME = "network_limits"
# label: (model_config arguments, up-sampling of training rows, TrainConfig.target)
VARIANTS = {
    "GRec": ({"arch": "grec"}, None, "label"),
    "MMoE": ({"arch": "mmoe"}, None, "label"),
    "GRec d_model 64": ({"arch": "grec", "d_model": 64}, None, "label"),
    "GRec 16 experts top-4": ({"arch": "grec", "experts": 16}, None, "label"),
    "GRec up-sampled (ATC x2; CVR x4; CTCVR x4)": ({"arch": "grec"}, {"ATC": 2, "CVR": 4, "CTCVR": 4}, "label"),
    # the reachable ceiling at this size (grec.benchmark.CEILINGS): no label noise
    "GRec on true probabilities": ({"arch": "grec"}, None, "oracle"),
    # the same for MMoE: can both architectures represent what the inputs say of the true probability?
    "MMoE on true probabilities": ({"arch": "mmoe"}, None, "oracle"),
}


def run(impressions: int, epochs: int, variants: list[str], log=typer.echo) -> dict:
    import torch

    from grec.features.training_set import load_dataset
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.evaluate import mean_auc_by_use_case, predict
    from grec.model.checkpoint import build_model, model_config
    from grec.model.inputs import InputConfig
    from grec.train import TrainConfig, fit

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise typer.BadParameter(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    out = {"simulation": {"impressions": impressions, "train_weeks": 5, "test_weeks": 1, "seed": 101},
           "epochs": epochs, "variants": {}}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["GREC_HOME"] = str(Path(folder) / "home")
        simulate_to(Path(folder) / "data", SimulationConfig(n_impressions=impressions, train_weeks=5, seed=101))
        encoded = {}  # one encoding per up-sampling: most variants share the plain one
        for label in variants:
            settings, upsample, target = VARIANTS[label]
            key = json.dumps(upsample, sort_keys=True)
            if key not in encoded:
                encoded[key] = load_dataset(Path(folder) / "data", upsample=upsample)
            data = encoded[key]
            test = data.rows["test"]
            arch_settings = {k: v for k, v in settings.items() if k != "arch"}
            torch.manual_seed(0)
            net = build_model(model_config(settings["arch"], InputConfig.sizes_from(data.spec), **arch_settings))
            history = []

            def on_epoch(entry, net=net, data=data, test=test, history=history):
                scores = mean_auc_by_use_case(test, predict(net, data, test), data.spec.tasks.use_cases)
                history.append({**entry, "test_auc": scores.pop("mean"), **{f"test_auc_{u}": v for u, v in scores.items()}})

            start = time.perf_counter()
            fit(net, data, TrainConfig(epochs=epochs, patience=epochs, seed=0, progress=False, target=target),
                on_epoch=on_epoch)
            by_loss = min(history, key=lambda e: e["valid_loss"])["epoch"]
            by_auc = max(history, key=lambda e: e["valid_auc"])["epoch"]
            if "oracle" not in out:
                oracle = mean_auc_by_use_case(test, test.oracle.numpy(), data.spec.tasks.use_cases)
                out["oracle"] = {"test_auc": oracle.pop("mean"), **{f"test_auc_{u}": v for u, v in oracle.items()}}
            out["variants"][label] = {"settings": settings, "upsample": upsample, "target": target,
                                      "train_rows": len(data.rows["train"]),
                                      "parameters": sum(p.numel() for p in net.parameters()),
                                      "seconds": time.perf_counter() - start, "history": history,
                                      "epoch_by_valid_loss": by_loss, "epoch_by_valid_auc": by_auc}
            log(f"  {label}: test mean AUC {history[by_loss - 1]['test_auc']:.4f} at epoch {by_loss} (valid loss), "
                f"{history[by_auc - 1]['test_auc']:.4f} at epoch {by_auc} (valid AUC)")
    return out


def markdown(payload: dict) -> str:
    r, m, sim = payload["result"], payload["machine"], payload["result"]["simulation"]
    lines = [
        "# Why the networks sit where they do: training length, early-stopping criterion, capacity, "
        "experts, up-sampling", "",
        f"Reproduce: `{payload['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"GPU: {m['gpu'] or 'none'}. Simulated storefront: {sim['impressions']:,} impressions, "
        f"{sim['train_weeks']} training weeks (the last one validates) and 1 test week, simulator seed "
        f"{sim['seed']} (the incumbents benchmark's). One model seed (0), {r['epochs']} epochs without early "
        "stopping, learning rate 1e-3 decayed x0.3 after an epoch without validation log-loss gain.", "",
        "Test mean AUC over the pooled use cases at the epoch each validation criterion keeps, and at the "
        "last epoch. One seed: differences under about 0.004 are inside the noise "
        "(`benchmarks/results/incumbents.md`).", "",
        "| variant | parameters | train rows | epoch by valid log-loss | test mean AUC there | epoch by valid "
        "mean AUC | test mean AUC there | test mean AUC, last epoch | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, v in r["variants"].items():
        h = v["history"]
        lines.append(f"| {label} | {v['parameters']:,} | {v['train_rows']:,} | {v['epoch_by_valid_loss']} | "
                     f"{h[v['epoch_by_valid_loss'] - 1]['test_auc']:.4f} | {v['epoch_by_valid_auc']} | "
                     f"{h[v['epoch_by_valid_auc'] - 1]['test_auc']:.4f} | {h[-1]['test_auc']:.4f} | {v['seconds']:.0f} |")
    use_cases = [k[len("test_auc_"):] for k in next(iter(r["variants"].values()))["history"][0] if k.startswith("test_auc_")]
    lines += ["", "Epoch by epoch (validation log-loss, validation mean AUC; test AUC per pooled use case):", "",
              "| variant | epoch | lr | valid log-loss | valid mean AUC | test mean AUC | "
              + " | ".join(f"test {u}" for u in use_cases) + " |",
              "|---|---:|---:|---:|---:|---:|" + "---:|" * len(use_cases)]
    for label, v in r["variants"].items():
        for e in v["history"]:
            lines.append(f"| {label} | {e['epoch']} | {e['lr']:.4g} | {e['valid_loss']:.5f} | {e['valid_auc']:.4f} | "
                         f"{e['test_auc']:.4f} | " + " | ".join(f"{e[f'test_auc_{u}']:.4f}" for u in use_cases) + " |")
    o = r["oracle"]
    lines.append(f"| Oracle (true probability) | | | | | {o['test_auc']:.4f} | "
                 + " | ".join(f"{o[f'test_auc_{u}']:.4f}" for u in use_cases) + " |")
    return "\n".join(lines) + "\n"


def main(
    impressions: Annotated[int, typer.Option(help="Simulated impressions in all")] = 400_000,
    epochs: Annotated[int, typer.Option(help="Epochs per variant (no early stopping)")] = 4,
    variants: Annotated[str, typer.Option(help="Comma-separated names from VARIANTS")] = ",".join(VARIANTS),
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown from the committed JSON")] = False,
    name: Annotated[str, typer.Option(help="Results file stem under benchmarks/results/")] = NAME,
):
    if render:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
    else:
        payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/network_limits.py", *sys.argv[1:]]),
                   "result": run(impressions, epochs, variants.split(","))}
    json_path, md_path = write_results(name, payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
