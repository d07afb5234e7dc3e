"""GRec as an MLflow pyfunc: feature rows in, one score per row out.

A request row is one candidate impression in the training-set layout (the columns
`FeatureSpec.input_columns()` names: customer context, search query text, the item and its
features, behaviour sequences, flow) plus `use_case`, which with the row's flow picks the task. The
model folder written by `grec.model.checkpoint.save_model` travels as the pyfunc's artifact, so
the registry holds exactly the config, feature spec and weights that were evaluated.

MLflow loads this file as "model from code" (`mlflow.models.set_model` at the bottom): no pickled
Python object in the registry, only this source and the artifacts.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import set_model

from grec.data.schema import SchemaError

ARTIFACT = "model"  # the pyfunc artifact key holding the model folder
LIST_COLUMNS = ("image_embedding", "viewed_item_ids", "visited_page_ids")


def request_frame(frame: pd.DataFrame, use_case: str | pd.Series, columns: list[str]) -> pd.DataFrame:
    """Rows of a training-set frame as a scoring request: the model's input columns, list cells as
    Python lists (JSON-friendly, so the signature reads them as arrays), plus `use_case`."""
    out = frame[columns].reset_index(drop=True).copy()
    floats = out.select_dtypes("floating").columns
    out[floats] = out[floats].astype(np.float64)  # double in the signature: accepts float32 and float64 callers
    for column in LIST_COLUMNS:
        out[column] = [np.asarray(v).tolist() for v in out[column]]
    out["use_case"] = use_case if isinstance(use_case, str) else np.asarray(use_case)
    return out


class GRecPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from grec.model.checkpoint import load_model

        self.model, self.spec = load_model(context.artifacts[ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame({"score": score_frame(self.model, self.spec, model_input)})


@torch.no_grad()
def score_frame(model: torch.nn.Module, spec, frame: pd.DataFrame, batch_size: int = 8192) -> np.ndarray:
    """(N,) probability of each row's task (its flow + its `use_case`)."""
    from grec.data.batch import Batch

    missing = [c for c in [*spec.input_columns(), "use_case"] if c not in frame.columns]
    if missing:
        raise SchemaError(f"scoring request: missing columns {missing}")
    use_cases = spec.tasks.use_cases
    use_case = pd.Categorical(frame["use_case"], categories=use_cases).codes
    if (use_case < 0).any():
        row = int(np.flatnonzero(use_case < 0)[0])
        raise SchemaError(f"column 'use_case': unknown use case {frame['use_case'].iloc[row]!r} at row {row}; "
                          f"known: {use_cases}")
    model.eval()
    from grec.model.checkpoint import device_of

    device = device_of(model)
    out = np.empty(len(frame), dtype=np.float32)
    for start in range(0, len(frame), batch_size):
        part = frame.iloc[start:start + batch_size]
        features = spec.encode(part)
        batch = Batch.single(features, torch.from_numpy(use_case[start:start + batch_size].astype(np.int64))).to(device)
        out[start:start + len(part)] = torch.sigmoid(model(batch).logits.float()).cpu().numpy()
    return out


@torch.no_grad()
def score_use_cases(model: torch.nn.Module, spec, frame: pd.DataFrame, batch_size: int = 8192) -> np.ndarray:
    """(N, U): the probability of every use case of the spec's vocabulary for each row (with its
    own flow). One Batch scores all U rows of an example, so the input layer encodes it once (drift
    scores every training-reference row for every use case: 4x fewer encodings than score_frame
    per use case)."""
    from grec.data.batch import Batch
    from grec.model.checkpoint import device_of

    missing = [c for c in spec.input_columns() if c not in frame.columns]
    if missing:
        raise SchemaError(f"scoring request: missing columns {missing}")
    model.eval()
    device, n_use_cases = device_of(model), len(spec.tasks.use_cases)
    out = np.empty((len(frame), n_use_cases), dtype=np.float32)
    for start in range(0, len(frame), batch_size):
        part = frame.iloc[start:start + batch_size]
        n = len(part)
        example = torch.arange(n).repeat_interleave(n_use_cases)  # (n*U,) example-major
        use_case = torch.arange(n_use_cases).repeat(n)
        batch = Batch(spec.encode(part), example, use_case).to(device)
        out[start:start + n] = torch.sigmoid(model(batch).logits.float()).cpu().numpy().reshape(n, n_use_cases)
    return out


set_model(GRecPyfunc())  # what MLflow picks up when it loads this file as the model's code
