"""Example Townlet strategy wheel: the cross-entropy method (CEM) on a linear policy.

Nothing is imported here: `townlet strategies list` imports only `plugin`, and NumPy and
Gymnasium load when the strategy is configured or run.
"""
