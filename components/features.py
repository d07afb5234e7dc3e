from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_features(tables: Input[Dataset], end: str, training_set: Output[Dataset]):
    """Feast: apply the repository with sources from the validated tables, materialize the online
    store up to `end`, write the point-in-time training set."""
    from pathlib import Path

    from grec.pipeline import steps

    manifest = steps.build_features(Path(tables.path), end, Path(training_set.path))
    training_set.metadata.update({"feature_service": manifest.feature_service, "split": manifest.split,
                                  **{f"rows.{k}": v for k, v in manifest.rows.items()}})
