from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_model(challenger: Input[Model], gate: Input[Artifact], model_name: str, pipeline_job: str) -> str:
    """Register the challenger (alias challenger) with the gate's decision recorded, passed or not.
    Returns the version."""
    import json
    from pathlib import Path

    from grec.pipeline import steps

    return steps.register(challenger.metadata["model_uri"], json.loads(Path(gate.path).read_text()), model_name,
                          tags={"kfp.pipeline_job": pipeline_job})


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def promote_model(version: str, gate: Input[Artifact], model_name: str) -> str:
    """Make the version champion on its passed gate (refused if the champion moved since). Returns it."""
    import json
    from pathlib import Path

    from grec.pipeline import steps

    return steps.promote(version, json.loads(Path(gate.path).read_text()), model_name).champion_after
