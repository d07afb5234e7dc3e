#!/bin/sh
# Install one lock file exactly (no resolution), as a Dockerfile RUN step: the proxy's CA bundle
# and a pip configuration come as BuildKit secrets when given (never in a layer), wheels no index
# serves from /wheels (deploy/wheels/), torch's CPU index from PIP_EXTRA_INDEX_URL when set.
set -eu
if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi
if [ -f /run/secrets/pip-conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip-conf; fi
exec pip install --no-deps --find-links /wheels ${PIP_EXTRA_INDEX_URL:+--extra-index-url "$PIP_EXTRA_INDEX_URL"} -r "$1"
