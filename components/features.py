from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_features(tables: Input[Dataset], end: str, max_lost_share: float, training_set: Output[Dataset]):
    """Feast: apply the repository with sources from the validated tables, materialize the online
    store up to `end`, write the point-in-time training set (impressions without a feature value
    within a TTL left out up to `max_lost_share` of them, the step failing past it)."""
    from pathlib import Path

    from grec.pipeline import steps

    manifest = steps.build_features(Path(tables.path), end, Path(training_set.path), max_lost_share)
    training_set.metadata.update({"feature_service": manifest.feature_service, "split": manifest.split,
                                  **{f"rows.{k}": v for k, v in manifest.rows.items()},
                                  **{f"left_out.{what}": v["rows"] for what, v in manifest.left_out.items()}})
