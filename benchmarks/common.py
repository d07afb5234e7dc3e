"""What every benchmark writes beside its figures: the machine, the software, and atomic output."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


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


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(name: str, payload: dict, markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    write_atomic(json_path, json.dumps(payload, indent=2, default=str) + "\n")
    write_atomic(md_path, markdown)
    return json_path, md_path
