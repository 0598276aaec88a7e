"""Model descriptions: ``ModelConfig`` plus presets and Hugging Face config loading.

``get_model(name_or_path)`` is the one entry point the rest of clustersim uses: a preset name
(``list_models()``), or a path to a Hugging Face ``config.json`` (or a directory holding one).
"""

from sim.model.config import (
    AttentionConfig,
    MLAConfig,
    ModelConfig,
    MoEConfig,
    PositionConfig,
)
from sim.model.params import ParamCounts, count_params
from sim.model.presets import get_model, list_models

__all__ = [
    "AttentionConfig", "MLAConfig", "ModelConfig", "MoEConfig", "ParamCounts", "PositionConfig",
    "count_params", "get_model", "list_models",
]
