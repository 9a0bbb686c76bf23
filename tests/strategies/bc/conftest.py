"""Helpers for the bc tests (`train_bc` itself lives in tests/conftest.py, shared)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "townlet"
