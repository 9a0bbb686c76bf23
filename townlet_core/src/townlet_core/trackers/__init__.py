"""The first-party trackers, `townlet train --track tensorboard,mlflow` (extras of the same
names). `plugin` registers them and imports nothing heavy; each tracker module imports its
library and is imported only on the tracker's own thread once a tracked run starts."""
