"""PPO strategy for Townlet (entry point `townlet_core.strategies: ppo`). The losses are in
`losses.py`, the update loop in `update.py`, rollouts in `rollout.py`."""
