"""Model descriptions: ``ModelConfig`` plus presets and Hugging Face config loading."""

from sim.model.config import (
    AttentionConfig,
    MLAConfig,
    ModelConfig,
    MoEConfig,
    PositionConfig,
)

__all__ = ["AttentionConfig", "MLAConfig", "ModelConfig", "MoEConfig", "PositionConfig"]
