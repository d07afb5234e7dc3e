"""Versioned policy files (the promotion gate's, the drift decision's): YAML read strictly, so a
misspelt rule is an error naming it, and the file's SHA-256 goes into every decision made with it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from grec.data.schema import SchemaError


def read_policy(path: Path, known: set[str], kind: str) -> tuple[dict, str]:
    """(fields, sha256) of the `kind` policy file at `path`; refuses a missing file, unknown fields
    and a missing `version`, naming them."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{path}: {kind} policy file not found")
    text = path.read_text()
    raw = yaml.safe_load(text) or {}
    unknown = set(raw) - known
    if unknown:
        raise SchemaError(f"{path}: unknown {kind} policy fields {sorted(unknown)}; known: {sorted(known)}")
    if "version" not in raw:
        raise SchemaError(f"{path}: field 'version' is required (bump it whenever a rule changes)")
    return raw, hashlib.sha256(text.encode()).hexdigest()
