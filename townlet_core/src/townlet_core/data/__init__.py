"""The torch-free data layer: Townlet replay samples, manifests, datasets and writers.

from townlet_core.data import ReplayDataset, TransitionLoader
dataset = ReplayDataset("captures/cartpole", batch_size=4, shuffle=True, seed=0)
train, val = dataset.split(0.2, seed=0)
for batch in TransitionLoader(train, batch_size=256, seed=0):
    ...
"""

from townlet_core.data.dataset import ReplayBatch, ReplayDataset, TransitionBatch, TransitionLoader
from townlet_core.data.manifest import DatasetSource, SampleEntry, open_source, read_manifest
from townlet_core.data.npz import read_sample, write_sample
from townlet_core.data.schema import check_schema
from townlet_core.data.stats import aggregate_baseline, sample_metrics
from townlet_core.data.trajectory import Trajectory, build_trajectory
from townlet_core.data.writer import DatasetWriter

__all__ = [
    "DatasetSource",
    "DatasetWriter",
    "ReplayBatch",
    "ReplayDataset",
    "SampleEntry",
    "Trajectory",
    "TransitionBatch",
    "TransitionLoader",
    "aggregate_baseline",
    "build_trajectory",
    "check_schema",
    "open_source",
    "read_manifest",
    "read_sample",
    "sample_metrics",
    "write_sample",
]
