"""What the whole-path tests share: a dataset folder taken through the training pipeline with the
CLI (as a user runs it) in its own state folder, and the ranking service's answers checked
against the registry's model in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.contract import read_contract, write_dataset
from grec.data.tables import load_tables

# floors off: one epoch on a few thousand rows is a weak model, and these runs are about the path
OPEN_GATE = "version: 1\nfloors: {default: 0.0}\n"


def cli(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREC_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "grec.cli", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def train_with_pipeline(home: Path, data: Path, *params: str) -> str:
    """`grec pipeline run training --local --param data=DIR ...` with one epoch and an open gate;
    returns what it printed."""
    policy = home / "gate_policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(OPEN_GATE)
    done = cli(home, "pipeline", "run", "training", "--local", "--param", f"data={data}", "--param", "epochs=1",
               "--param", "min_task_positives=1", "--param", f"gate_policy={policy}", *params)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def keep_train_rows(source: Path, out: Path, n: int, seed: int = 0, held_out: int | None = None) -> Path:
    """A copy of a contract folder with at most `n` training impressions (and at most `held_out`
    of each other split; default whole): the same data, a shorter run."""
    contract = read_contract(source)
    tables = load_tables(source, contract)
    imp = tables["impressions"]
    rng = np.random.default_rng(seed)
    drop = []
    for split, keep in imp.groupby(contract.split).indices.items():
        cap = n if split == "train" else held_out
        if cap is not None:
            drop.append(rng.permutation(keep)[cap:])
    drop = np.concatenate(drop) if drop else np.array([], dtype=int)
    imp = tables["impressions"] = imp.drop(index=imp.index[drop]).reset_index(drop=True)
    if "customers" in tables:  # and the customers those impressions show (Census: a person a row)
        tables["customers"] = tables["customers"][tables["customers"]["customer_id"].isin(imp["customer_id"])]
    write_dataset(tables, out, contract)
    return out


def in_process_scores(frame: pd.DataFrame, model, spec, use_case: str) -> dict[int, float]:
    """item_id -> the registry model's score of the ranker's request rows (full MoE, pyfunc path)."""
    from grec.lifecycle.pyfunc import request_frame, score_frame

    scores = score_frame(model, spec, request_frame(frame, use_case, spec.input_columns()))
    return dict(zip(frame["item_id"].tolist(), scores.tolist()))


@contextmanager
def loaded_and_trained(tmp_path_factory, name: str, source: Path, train_rows: int, held_out_rows: int | None = None):
    """`grec data load NAME --source SOURCE`, cut to `train_rows` training impressions (and
    `held_out_rows` of each other split), through the training pipeline in a fresh state folder;
    yields {"home", "data", "stdout"} with GREC_HOME set."""
    import pytest
    from typer.testing import CliRunner

    from grec.cli import app

    home = tmp_path_factory.mktemp(f"{name}-state")
    loaded = tmp_path_factory.mktemp(name) / "loaded"
    result = CliRunner().invoke(app, ["data", "load", name, "--source", str(source), "--out", str(loaded)])
    assert result.exit_code == 0, result.output
    data = keep_train_rows(loaded, loaded.with_name("small"), train_rows, held_out=held_out_rows)
    stdout = train_with_pipeline(home, data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield {"home": home, "data": data, "stdout": stdout}
