"""Draw one frame of townlet/Town-v0 (docs/images/town-frame.png): one agent's four map
channels. Run from the repository root: .venv/bin/python docs/images/make_town_frame.py"""

import numpy as np
from matplotlib.figure import Figure

from townlet_core.envs.town import MAP_CHANNELS, parallel_env, town_expert

env = parallel_env(size=11, population=3, render_mode="ansi")
observations, infos = env.reset(seed=4)
expert = town_expert()
for step in range(200):  # the expert walks to what it needs most and queues politely
    batch = {k: np.stack([observations[a][k] for a in env.agents]) for k in ("map", "features")}
    masks = np.stack([infos[a]["action_mask"] for a in env.agents])
    actions = expert(batch, masks)
    observations, *_rest, infos = env.step(dict(zip(env.agents, actions, strict=True)))
    if step >= 40 and observations["agent_0"]["map"][3].any():  # someone is being served
        break
print(env.render())
grid = observations["agent_0"]["map"]
figure = Figure(figsize=(12, 3.2))
axes = figure.subplots(1, 4)
for axis, channel, name in zip(axes, grid, MAP_CHANNELS, strict=True):
    axis.imshow(channel, cmap="viridis", vmin=0, vmax=1)
    axis.set_title(f"agent_0's map: {name}")
    axis.set_xticks([])
    axis.set_yticks([])
figure.tight_layout()
figure.savefig("docs/images/town-frame.png", dpi=90)
