"""Result DTOs (pydantic, frozen, JSON round-trip). Strategy-specific DTOs live beside the base."""

from townlet_core.dto.anneal import AnnealStageResultDTO, AnnealStatus, AnnealSummaryDTO
from townlet_core.dto.base import ResultStatus, TrainingResultDTO
from townlet_core.dto.bc import BCTrainingResultDTO
from townlet_core.dto.ppo import TELEMETRY_FIELDS, TELEMETRY_VERSION, PPOTrainingResultDTO

__all__ = [
    "TELEMETRY_FIELDS",
    "TELEMETRY_VERSION",
    "AnnealStageResultDTO",
    "AnnealStatus",
    "AnnealSummaryDTO",
    "BCTrainingResultDTO",
    "PPOTrainingResultDTO",
    "ResultStatus",
    "TrainingResultDTO",
]
