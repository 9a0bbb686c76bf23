"""Anneal strategy for Townlet (entry point `townlet_core.strategies: anneal`). Torch-free."""
