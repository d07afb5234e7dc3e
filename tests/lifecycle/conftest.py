"""What the lifecycle tests share: a module-wide state folder and tracking store."""

import shutil
from contextlib import contextmanager

import pytest


@contextmanager
def tracking_store(root, texts):
    """GREC_HOME and a SQLite MLflow store under `root`, the session's text vectors copied in,
    for the length of the block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(root / "state"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        (root / "state" / "features").mkdir(parents=True)
        shutil.copy(texts.path, root / "state" / "features" / texts.path.name)
        yield mp


def scores_in_new_process(model_uri: str, model_dir, frame, tmp_path):
    """(what `model_dir` scores here, what the registered `model_uri` scores in a fresh Python
    process) for the rows of `frame` as a pyfunc request, the use cases taken in turn."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np

    from grec.lifecycle.pyfunc import request_frame, score_frame
    from grec.model.checkpoint import load_model

    model, spec = load_model(model_dir)
    request = request_frame(frame, np.resize(list(spec.tasks.use_cases), len(frame)), spec.input_columns())
    expected = score_frame(model, spec, request)
    request.to_parquet(tmp_path / "request.parquet")
    script = (f"import mlflow, pandas as pd, json; m = mlflow.pyfunc.load_model('{model_uri}'); "
              f"df = pd.read_parquet('{tmp_path / 'request.parquet'}'); "
              "print(json.dumps(m.predict(df)['score'].tolist()))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return expected, np.asarray(json.loads(out.stdout.strip().splitlines()[-1]))
