"""Kubeflow Pipelines components: thin typed wrappers, one per step, each calling one function of
`grec.pipeline.steps` (where the logic lives and is tested without kfp).

Every component runs on the project's image, built by deploy/Dockerfile from the lock file. The
same definitions run locally as lightweight components with kfp's SubprocessRunner in the current
environment (the local runner refuses containerized components).
"""

import os

# The component image: name and tag in one place; GREC_IMAGE overrides it (a registry mirror, a
# release tag) when compiling.
IMAGE_NAME = "ghcr.io/grec-platform/grec"
IMAGE_TAG = "0.1.0"
BASE_IMAGE = os.environ.get("GREC_IMAGE", f"{IMAGE_NAME}:{IMAGE_TAG}")
