"""Writing files so that nothing is ever half-written: a temporary file in the same folder, then
an atomic rename. Readers see the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write(path: Path, write) -> Path:
    """Call `write(tmp_path)`, then move the result onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; the outputs are ordinary data files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield an empty folder beside `path` to write into; on success it replaces `path` whole
    (an existing folder is removed first), on error it is deleted and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes owner-only folders; these are ordinary shared data
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_parquet(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, row_group_size=row_group_size))


def write_json(path: Path, payload, default=None) -> Path:
    text = json.dumps(payload, indent=2, default=default)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
