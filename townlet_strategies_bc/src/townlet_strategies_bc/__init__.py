"""Behaviour cloning strategy for Townlet (entry point `townlet_core.strategies: bc`)."""
