from kfp import dsl
from kfp.dsl import Artifact, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def package_service(champion: str, model_name: str, bento: Output[Artifact]) -> str:
    """`bentoml build` the ranking service around the champion; the exported Bento is the output
    (a cluster imports it with `bentoml import`). Returns the Bento tag."""
    from pathlib import Path

    from grec.pipeline import steps

    tag = steps.package(Path(bento.path), model_name)
    bento.metadata.update({"bento_tag": tag, "model": f"{model_name} v{champion}"})
    return tag
