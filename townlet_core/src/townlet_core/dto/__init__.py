"""Result DTOs (pydantic, frozen, JSON round-trip). Strategy-specific DTOs live beside the base."""

from townlet_core.dto.base import ResultStatus, TrainingResultDTO

__all__ = ["ResultStatus", "TrainingResultDTO"]
