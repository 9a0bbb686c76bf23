"""Result DTOs (pydantic, frozen, JSON round-trip). Strategy-specific DTOs live beside the base."""

from townlet_core.dto.base import ResultStatus, TrainingResultDTO
from townlet_core.dto.bc import BCTrainingResultDTO

__all__ = ["BCTrainingResultDTO", "ResultStatus", "TrainingResultDTO"]
