"""What every benchmark writes beside its figures: the machine, the software, and atomic output."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from grec.io import write_json, write_text

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


def write_results(name: str, payload: dict, markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    write_json(json_path, payload, default=str)
    write_text(md_path, markdown)
    return json_path, md_path
