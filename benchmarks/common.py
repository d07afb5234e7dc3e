"""What every benchmark writes beside its figures: the machine, the software, and atomic output."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

from grec.io import write_json, write_text

RESULTS = Path(__file__).resolve().parent / "results"


def code_fingerprint() -> str:
    """A hash of the source of every grec module loaded so far (call it once the code a benchmark
    runs is imported): results kept for a later run are reused only by the same code, so a
    changed model, loader or trainer trains again while a change elsewhere (serving, say) does not."""
    digest = hashlib.sha256()
    for name in sorted(m for m in sys.modules if m == "grec" or m.startswith("grec.")):
        source = getattr(sys.modules[name], "__file__", None)
        if source:
            digest.update(name.encode() + b"\0" + Path(source).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def write_results(name: str, payload: dict, markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    write_json(json_path, payload, default=str)
    write_text(md_path, markdown)
    return json_path, md_path
