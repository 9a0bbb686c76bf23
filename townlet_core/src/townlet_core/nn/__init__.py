"""What BC and PPO share to exchange weights: the policy network, device selection,
checkpoints and a checkpoint-backed policy. Imports torch: only strategies (and the
commands that load checkpoints) import this package, never the core itself."""

from townlet_core.nn.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from townlet_core.nn.device import device_name, select_device, torch_threads
from townlet_core.nn.distributions import ActionDistribution, distribution_for
from townlet_core.nn.network import PolicyNetwork, build_network
from townlet_core.nn.normalize import ObservationNormalizer, RewardScaler
from townlet_core.nn.policy import TorchPolicy

__all__ = [
    "ActionDistribution",
    "ObservationNormalizer",
    "PolicyNetwork",
    "RewardScaler",
    "TorchPolicy",
    "build_network",
    "device_name",
    "distribution_for",
    "load_checkpoint",
    "load_training_state",
    "save_checkpoint",
    "select_device",
    "torch_threads",
]
