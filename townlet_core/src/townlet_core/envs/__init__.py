"""Environments and rollouts, torch-free: how Townlet builds Gymnasium vector envs
(`make`), the policy interface they are stepped with (`policies`, `resolve`, `experts`),
and the two rollouts every strategy shares: `capture` (record a dataset) and `evaluation`
(greedy returns on fixed seeds).

Import from the submodules; this package imports nothing so that the torch module can use
the policy interface without pulling in Gymnasium.
"""
