"""Build, save and load any of the models. A model folder holds three files:
`config.json` (the model's config dataclass, class named), `features.json` (the FeatureSpec that
encodes its inputs) and `weights.pt` (the state dict). Written to a temporary folder, then renamed."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from grec.data.spec import FeatureSpec
from grec.io import atomic_folder
from grec.model.baselines import PLE, BaselineConfig, MMoE, SharedBottom, SingleTask
from grec.model.grec import GRec, GRecConfig, config_to_json
from grec.model.trees import PerTaskTrees, TreeConfig

CONFIGS = {"GRecConfig": GRecConfig, "BaselineConfig": BaselineConfig, "TreeConfig": TreeConfig}
BASELINE_CLASSES = {"mmoe": MMoE, "ple": PLE, "shared_bottom": SharedBottom, "single_task": SingleTask}
ARCHS = ("grec", *BASELINE_CLASSES, "lightgbm")  # what `grec train --model` and the pipeline's train step take


def model_config(arch: str, sizes: dict, d_model: int = 32, experts: int = 0, top_k: int = 4,
                 capacity: int | None = 2, routing: str = "task_sentence", match_features: bool = True,
                 attribute_features: bool = True, learned_interactions: bool = True, number_embeddings: bool = True,
                 ) -> GRecConfig | BaselineConfig | TreeConfig:
    """The config of `arch` ("grec" or a baseline) for data of `sizes` (InputConfig.sizes_from):
    what `grec train` and the pipeline's train step build. experts 0: GRec 8, MMoE 4. "lightgbm":
    the per-task incumbents (the network sizes do not apply). Every model gets the match and
    history-attribute features (grec.model.match) and networks learn the attribute interactions
    (grec.model.interactions) unless told otherwise (why: docs/benchmarks.md, GRec across worlds)."""
    if arch == "lightgbm":
        return TreeConfig(n_flows=sizes["n_flows"], n_use_cases=sizes["n_use_cases"],
                          attribute_features=attribute_features, item_cardinalities=list(sizes["item_cardinalities"]))
    inputs = dict(d_model=d_model, match_features=match_features, attribute_features=attribute_features,
                  learned_interactions=learned_interactions, number_embeddings=number_embeddings)
    if arch == "grec":
        return GRecConfig(**sizes, **inputs, n_experts=experts or 8, top_k=top_k, capacity=capacity or None,
                          routing=routing)
    if arch not in BASELINE_CLASSES:
        raise ValueError(f"unknown model {arch!r}; choose from {', '.join(ARCHS)}")
    return BaselineConfig(**sizes, **inputs, arch=arch, n_experts=experts or 4)


def build_model(config: GRecConfig | BaselineConfig | TreeConfig) -> nn.Module:
    if isinstance(config, GRecConfig):
        return GRec(config)
    if isinstance(config, TreeConfig):
        return PerTaskTrees(config)
    if config.arch not in BASELINE_CLASSES:
        raise ValueError(f"unknown baseline arch {config.arch!r}; choose from {sorted(BASELINE_CLASSES)}")
    return BASELINE_CLASSES[config.arch](config)


def save_model(model: nn.Module, spec: FeatureSpec, out_dir: Path) -> Path:
    with atomic_folder(out_dir) as tmp:
        (tmp / "config.json").write_text(config_to_json(model.config))
        spec.save(tmp / "features.json")
        torch.save(model.state_dict(), tmp / "weights.pt")
    return Path(out_dir)


def device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are (CPU for the trees, which have no tensors)."""
    return next(model.parameters(), torch.empty(0)).device


def load_config(path: Path) -> GRecConfig | BaselineConfig | TreeConfig:
    raw = json.loads(Path(path).read_text())
    name = raw.pop("model")
    if name not in CONFIGS:
        raise ValueError(f"{path}: unknown model config {name!r}")
    return CONFIGS[name](**raw)


def load_model(model_dir: Path, map_location: str = "cpu") -> tuple[nn.Module, FeatureSpec]:
    model_dir = Path(model_dir)
    model = build_model(load_config(model_dir / "config.json"))
    model.load_state_dict(torch.load(model_dir / "weights.pt", map_location=map_location, weights_only=True))
    return model.eval(), FeatureSpec.load(model_dir / "features.json")
