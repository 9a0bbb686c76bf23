"""`townlet/Town-v0`: a small multi-agent town where agents share too few amenities.

Townlet's social telemetry (queue conflicts, shared meals) needs a world in which those
events happen for a reason a policy can learn to avoid. This one is a PettingZoo *parallel*
env (`TownEnv`, built by `parallel_env`), numpy only, with no downloads, seeded and
deterministic, plus a scripted expert (`TownExpert`) for capture and behaviour cloning.
PettingZoo is imported at the top: this module is imported only when a user asks for the
town, and PettingZoo is the `multiagent` extra.

The world, and why it is built so:

- **Grid.** `size x size` cells with a wall ring; agents live in the `(size-2)^2` interior,
  at most one to a cell. The walls are not drawn in the map: they are always the border, so
  they carry no information a network could use.
- **Amenities.** A food counter row (`food_row = 1 + (size-3)//4`) and a bed row mirrored
  below it, each a contiguous, centred block of `k = max(1, min(population // 4,
  (size-1)//2))` cells. Fewer of each kind than agents (from two agents up), so queues form;
  a block rather than scattered cells, so that neighbours can eat side by side (the
  `shared_meal` event below); rows far apart, so the day is a walk between them. The layout
  is a function of `size` and `population` only: the seed moves agents, not the town.
- **Service.** An agent standing on an amenity *holds* it (that is the reservation the map
  shows): only it can be served there, and `interact` restores its need of that kind by
  `RESTORE_PER_STEP` a step, so a meal takes a few steps of repeated `interact`.
- **Needs.** `hunger` and `energy` in [0, 1], 1 = satisfied, start uniform in
  `START_NEEDS` and fall each step by a per-agent rate (`HUNGER_DECAY`/`ENERGY_DECAY` times
  a factor uniform in `1 ± DECAY_JITTER`, drawn at reset), so agents fall hungry at
  different times and do not all queue at once.
- **Actions.** `Discrete(6)`: 0 wait, 1 up, 2 down, 3 left, 4 right, 5 interact. The mask
  (`infos[agent]["action_mask"]`, int8, 1 = allowed) forbids moves into walls and into
  cells another agent stands on (at the start of the step); interact is allowed on an
  amenity *or next to one* (orthogonally): next to one it is how an agent pushes into a
  queue, and that must be a choice a policy can make (and learn not to), not one the mask
  hides. Wait is always allowed. A forbidden action chosen anyway is carried out as wait,
  so nothing ever enters a wall or another agent's cell.
- **Moves.** Simultaneous: two agents stepping into the same free cell are settled by a
  random priority drawn from the env's generator (only on steps that have such a contest,
  so the episode stays a function of seed and actions); the loser waits. A cell being
  vacated this step counts as occupied (the mask is computed before anyone moves).
- **queue_conflict.** One event for each amenity held by another agent that an agent
  pushes into this step: `interact` from a cell next to it, or a move onto it (a forbidden
  move, carried out as wait, but the push happened). Intensity `MIN_INTENSITY +
  (1 - MIN_INTENSITY) * (1 - need)`, with the pusher's need of that amenity's kind before
  the step: in (0, 1], higher the more urgent. Waiting near a held amenity is no conflict.
- **shared_meal.** For an agent served at a food counter, one event for each orthogonal
  neighbour also served at a food counter the same step (0, 1 or 2: counters are a row);
  so only in towns with two counters or more (eight agents and up).
- **Reward** (per agent, per step): `comfort - CONFLICT_PENALTY * intensity_sum`, where
  comfort is the mean over the two needs of `clip((need - COMFORT) / (1 - COMFORT), 0, 1)`:
  in [0, 1], each need counting only above the comfort level (a starving agent earns
  nothing for it), and a push costs up to half a step of full comfort. Measured on seeds
  0-2, population 3, 200 steps (`tests/envs/test_town.py`): the expert returns 116.4 per
  agent and never pushes, a uniform random mask-respecting policy 17.5; in a crowded town
  (size 5) random agents push 10.7 times each an episode (in the default town three random
  walkers almost never meet at an amenity).
- **Episode.** Every live agent is truncated at `max_steps`, and then `agents` is empty.
  With `leave_when_rested=True` an agent also terminates (leaves the town: its cell and any
  amenity it held are freed, the others carry on) the step a bed brings its energy to
  `REST_LEVEL` or more; off by default, it is how the framework's tests see agents drop out.

Observation (`observation_space(agent)`): a Dict of
- `map`, float32 `(4, size, size)` in [0, 1], channels `MAP_CHANNELS`: `self` (1 at the own
  cell), `agents` (1 at other agents' cells), `objects` (food 0.5, bed 1.0: one channel for
  both kinds keeps the map small, two levels keep them apart), `reservations` (1 on every
  held amenity, own included);
- `features`, float32 `(len(FEATURE_NAMES),)` in [-1, 1], named by `FEATURE_NAMES`: the two
  needs; the own row and column over `size - 1`; for each kind, the offset (rows, columns,
  over `size - 1`) to the nearest amenity of that kind the agent may use (free, or its own),
  or to the nearest of that kind when all are held, and whether that one is held by another
  (`food_busy`, `bed_busy`); `waiting` (next to an amenity someone else holds, not on one);
  and the time, `t / max_steps`. The offsets and busy flags are what makes an expert that
  is a pure function of one observation row possible.

`reset(seed=None)` draws fresh entropy; the same seed and the same actions give the same
episode (Townlet's `AgentVectorEnv` always passes a seed). `reset(options=...)` may set the
scene (positions, needs, decay rates), so tests can derive what a step must give by hand.

Speed: the state is a few arrays over agents (positions, needs, decay rates) and a step is a
fixed number of numpy operations whatever the population; the per-agent dicts PettingZoo asks
for are the only Python loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

#: The map's channels, in order.
MAP_CHANNELS: tuple[str, ...] = ("self", "agents", "objects", "reservations")

#: The feature vector's entries, in order (see the module docstring).
FEATURE_NAMES: tuple[str, ...] = (
    "hunger",
    "energy",
    "row",
    "col",
    "food_dr",
    "food_dc",
    "bed_dr",
    "bed_dc",
    "food_busy",
    "bed_busy",
    "waiting",
    "time",
)

WAIT, UP, DOWN, LEFT, RIGHT, INTERACT = range(6)
ACTION_COUNT = 6
#: Row/column step of each action (wait and interact stay put).
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], dtype=np.int64)

FOOD, BED = 0, 1  # amenity kinds; also the index of the need each one restores
#: The `objects` channel's value for each kind.
OBJECT_VALUES = (0.5, 1.0)

HUNGER_DECAY = 0.012  # a need falls from 1 to 0 in about 80 (hunger) and 125 (energy) steps,
ENERGY_DECAY = 0.008  # so a 200-step day needs two or three meals and one or two sleeps
DECAY_JITTER = 0.2
START_NEEDS = (0.5, 1.0)
RESTORE_PER_STEP = 0.1  # a meal from 0.4 to full takes about seven steps of interact
COMFORT = 0.3
CONFLICT_PENALTY = 0.5
MIN_INTENSITY = 0.1
REST_LEVEL = 0.9

#: The telemetry keys every live agent's info carries each step (floats).
EVENT_KEYS = ("queue_conflict_events", "queue_conflict_intensity_sum", "shared_meal_events")
MASK_KEY = "action_mask"

_FAR = 1 << 20  # distance added to amenities an agent may not use, when choosing a target


def amenity_count(size: int, population: int) -> int:
    """Amenities of each kind: one per four agents, at least one, at most what fits a row
    of the interior with room left at its ends."""
    return max(1, min(population // 4, (size - 1) // 2))


def amenity_layout(size: int, population: int) -> tuple[np.ndarray, np.ndarray]:
    """`(positions (M, 2), kinds (M,))`: the food block, then the bed block (see module)."""
    k = amenity_count(size, population)
    food_row = 1 + (size - 3) // 4
    rows = (food_row, size - 1 - food_row)
    first = 1 + (size - 2 - k) // 2
    positions = [(rows[kind], first + j) for kind in (FOOD, BED) for j in range(k)]
    kinds = [kind for kind in (FOOD, BED) for _ in range(k)]
    return np.asarray(positions, dtype=np.int64), np.asarray(kinds, dtype=np.int64)


class TownEnv(ParallelEnv):  # type: ignore[misc]  # PettingZoo ships no type information
    """The town (see the module docstring for the rules and the observation layout)."""

    #: Besides PettingZoo's name and render modes, what a Townlet capture copies into each
    #: sample's metadata in the original layout: the feature and map channel names, the
    #: observation variant (the original's "hybrid": a map plus features) and the ids of
    #: the actions as the original's action payloads.
    metadata: ClassVar[dict[str, Any]] = {
        "name": "townlet_town_v0",
        "render_modes": ["ansi"],
        "feature_names": list(FEATURE_NAMES),
        "map_channels": list(MAP_CHANNELS),
        "variant": "hybrid",
        "action_lookup": {
            '{"kind": "wait"}': WAIT,
            '{"direction": "up", "kind": "move"}': UP,
            '{"direction": "down", "kind": "move"}': DOWN,
            '{"direction": "left", "kind": "move"}': LEFT,
            '{"direction": "right", "kind": "move"}': RIGHT,
            '{"kind": "interact"}': INTERACT,
        },
    }

    def __init__(
        self,
        *,
        size: int = 11,
        population: int = 3,
        max_steps: int = 200,
        leave_when_rested: bool = False,
        render_mode: str | None = None,
    ) -> None:
        _check_arguments(size, population, max_steps, render_mode)
        self.size = size
        self.population = population
        self.max_steps = max_steps
        self.leave_when_rested = leave_when_rested
        self.render_mode = render_mode
        self.possible_agents: list[str] = [f"agent_{i}" for i in range(population)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}

        self._amenity_pos, self._amenity_kind = amenity_layout(size, population)
        self._amenity_at = np.full((size, size), -1, dtype=np.int64)
        self._amenity_at[self._amenity_pos[:, 0], self._amenity_pos[:, 1]] = np.arange(
            len(self._amenity_kind)
        )
        self._kind_at = np.full((size, size), -1, dtype=np.int64)
        self._kind_at[self._amenity_pos[:, 0], self._amenity_pos[:, 1]] = self._amenity_kind
        self._of_kind = [np.flatnonzero(self._amenity_kind == kind) for kind in (FOOD, BED)]
        self._objects = np.zeros((size, size), dtype=np.float32)
        self._objects[self._amenity_pos[:, 0], self._amenity_pos[:, 1]] = np.asarray(
            OBJECT_VALUES, dtype=np.float32
        )[self._amenity_kind]
        self._interior = np.zeros((size, size), dtype=bool)
        self._interior[1:-1, 1:-1] = True
        # cells from which interact is allowed: on an amenity or orthogonally next to one
        on = self._amenity_at >= 0
        near = on.copy()
        near[1:, :] |= on[:-1, :]
        near[:-1, :] |= on[1:, :]
        near[:, 1:] |= on[:, :-1]
        near[:, :-1] |= on[:, 1:]
        self._near_amenity = near & self._interior

        self.observation_spaces: dict[str, spaces.Dict] = {
            agent: spaces.Dict(
                {
                    "map": spaces.Box(0.0, 1.0, (len(MAP_CHANNELS), size, size), np.float32),
                    "features": spaces.Box(-1.0, 1.0, (len(FEATURE_NAMES),), np.float32),
                }
            )
            for agent in self.possible_agents
        }
        self.action_spaces: dict[str, spaces.Discrete] = {
            agent: spaces.Discrete(ACTION_COUNT) for agent in self.possible_agents
        }

        self._rng = np.random.default_rng()
        self._pos = np.zeros((population, 2), dtype=np.int64)
        self._needs = np.ones((population, 2), dtype=np.float64)
        self._decay = np.zeros((population, 2), dtype=np.float64)
        self._alive = np.zeros(population, dtype=bool)
        self._masks = np.zeros((population, ACTION_COUNT), dtype=np.int8)
        self._held_by = np.full((size, size), -1, dtype=np.int64)  # agent on each amenity
        self._t = 0

    # -- spaces ----------------------------------------------------------------------

    def observation_space(self, agent: str) -> spaces.Dict:
        """The agent's observation space (the same object on every call)."""
        return self.observation_spaces[self._known(agent)]

    def action_space(self, agent: str) -> spaces.Discrete:
        """The agent's action space (the same object on every call, so seeding it sticks)."""
        return self.action_spaces[self._known(agent)]

    def _known(self, agent: str) -> str:
        if agent not in self._index:
            raise ValueError(
                f"unknown agent {agent!r}; this town's agents are agent_0..agent_"
                f"{self.population - 1}"
            )
        return agent

    # -- episode ---------------------------------------------------------------------

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
        """Place the agents on distinct free cells and draw their needs and decay rates.

        `options` may set any of them, to start a chosen scene (tests, demonstrations):
        `positions` (population x (row, col), distinct interior cells, amenities allowed),
        `needs` and `decay` (population x (hunger, energy); needs in [0, 1], decay >= 0).
        They replace what was drawn, so the generator moves on the same with or without
        them. Other keys are ignored (PettingZoo's API test passes one)."""
        self._rng = np.random.default_rng(seed)
        free = np.flatnonzero((self._interior & (self._amenity_at < 0)).ravel())
        cells = self._rng.choice(free, size=self.population, replace=False)
        self._pos = np.stack(np.divmod(cells, self.size), axis=1).astype(np.int64)
        low, high = START_NEEDS
        self._needs = self._rng.uniform(low, high, size=(self.population, 2))
        jitter = self._rng.uniform(1 - DECAY_JITTER, 1 + DECAY_JITTER, size=(self.population, 2))
        self._decay = jitter * np.array([HUNGER_DECAY, ENERGY_DECAY])
        self._apply_options(options or {})
        self._alive = np.ones(self.population, dtype=bool)
        self._t = 0
        self.agents = list(self.possible_agents)
        rows = np.arange(self.population)
        observations, masks = self._observe(rows)
        zeros = np.zeros(self.population)
        return observations, self._infos(rows, masks, zeros, zeros, zeros)

    def _apply_options(self, options: Mapping[str, Any]) -> None:
        """Set the scene `options` names (see `reset`); ValueError for one that cannot be."""
        shape = (self.population, 2)
        if "positions" in options:
            positions = np.asarray(options["positions"])
            if positions.shape != shape or positions.dtype.kind not in "iu":
                raise ValueError(f"options['positions'] must be {shape} integers (row, col)")
            positions = positions.astype(np.int64)
            inside = ((positions >= 1) & (positions <= self.size - 2)).all(axis=1)
            cells = positions[:, 0] * self.size + positions[:, 1]
            if not inside.all() or len(np.unique(cells)) != self.population:
                raise ValueError(
                    "options['positions'] must be distinct cells inside the walls (rows and "
                    f"columns 1..{self.size - 2})"
                )
            self._pos = positions
        if "needs" in options:
            self._needs = _pairs(options["needs"], "needs", shape, 1.0)
        if "decay" in options:
            self._decay = _pairs(options["decay"], "decay", shape, np.inf)

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, dict[str, np.ndarray]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Advance every live agent one step; a live agent without an action waits."""
        if not self.agents:
            raise ValueError("the episode is over (no agents left); call reset() first")
        rows = np.asarray([self._index[agent] for agent in self.agents], dtype=np.int64)
        chosen = self._read_actions(actions)[rows]
        legal = self._masks[rows, chosen].astype(bool)
        acting = np.where(legal, chosen, WAIT)
        pos = self._pos[rows]
        needs_before = self._needs[rows]
        here = self._amenity_at[pos[:, 0], pos[:, 1]]
        events, intensity = self._pushes(rows, chosen, pos, needs_before)

        self._move(rows, acting)

        # service, then needs
        served = (acting == INTERACT) & (here >= 0)
        served_kind = self._amenity_kind[np.maximum(here, 0)]
        needs = needs_before - self._decay[rows]
        needs[served, served_kind[served]] += RESTORE_PER_STEP
        np.clip(needs, 0.0, 1.0, out=needs)
        self._needs[rows] = needs

        eating = served & (served_kind == FOOD)
        shared = np.zeros(len(rows))
        if eating.sum() > 1:
            grid = np.zeros((self.size, self.size), dtype=np.int64)
            grid[pos[eating, 0], pos[eating, 1]] = 1
            around = pos[eating, None, :] + MOVES[None, UP : RIGHT + 1, :]
            shared[eating] = grid[around[..., 0], around[..., 1]].sum(axis=1)

        comfort = np.clip((needs - COMFORT) / (1.0 - COMFORT), 0.0, 1.0).mean(axis=1)
        rewards = comfort - CONFLICT_PENALTY * intensity
        leaving = np.zeros(len(rows), dtype=bool)
        if self.leave_when_rested:
            leaving = served & (served_kind == BED) & (needs[:, BED] >= REST_LEVEL)
        self._alive[rows[leaving]] = False
        self._t += 1
        truncated = self._t >= self.max_steps

        observations, masks = self._observe(rows)
        infos = self._infos(rows, masks, events, intensity, shared)
        names = list(self.agents)
        reward_of = {agent: float(rewards[i]) for i, agent in enumerate(names)}
        terminated = {agent: bool(leaving[i]) for i, agent in enumerate(names)}
        truncations = dict.fromkeys(names, truncated)
        if truncated:
            self._alive[:] = False
        self.agents = [agent for agent in names if self._alive[self._index[agent]]]
        return observations, reward_of, terminated, truncations, infos

    def _read_actions(self, actions: Mapping[str, Any]) -> np.ndarray:
        """Each agent's action id (wait for a live agent without one); ValueError for an
        unknown agent or an id outside 0..5. Actions of agents that are done are ignored."""
        chosen = np.zeros(self.population, dtype=np.int64)
        for agent, action in actions.items():
            index = self._index.get(agent)
            if index is None:
                raise ValueError(
                    f"action for unknown agent {agent!r}; this town's agents are "
                    f"{self.possible_agents[0]}..{self.possible_agents[-1]}"
                )
            value = np.asarray(action)
            if value.size != 1 or value.dtype.kind not in "iu":
                raise ValueError(f"{agent}'s action must be one integer id in 0..5, got {action!r}")
            number = int(value.reshape(()))
            if not 0 <= number < ACTION_COUNT:
                raise ValueError(f"{agent}'s action must be in 0..5, got {number}")
            chosen[index] = number
        return chosen

    def _occupancy(self) -> np.ndarray:
        """(size, size): the index of the live agent on each cell, -1 where none."""
        grid = np.full((self.size, self.size), -1, dtype=np.int64)
        live = np.flatnonzero(self._alive)
        grid[self._pos[live, 0], self._pos[live, 1]] = live
        return grid

    def _pushes(
        self, rows: np.ndarray, chosen: np.ndarray, pos: np.ndarray, needs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(events, intensity sums) of `rows`' pushes into amenities held by someone else: a
        move onto one (forbidden, carried out as wait), or interact from a cell beside one.
        `needs` are the pushers' needs before the step."""
        events = np.zeros(len(rows))
        intensity = np.zeros(len(rows))
        held_by = self._held_by  # as the step starts: the mask was computed from the same
        target = pos + MOVES[chosen]
        # a cell an agent moves onto is never its own, so any holder there is someone else
        onto = ((chosen >= UP) & (chosen <= RIGHT)) & (held_by[target[:, 0], target[:, 1]] >= 0)
        beside_interact = (chosen == INTERACT) & (self._amenity_at[pos[:, 0], pos[:, 1]] < 0)
        if onto.any():
            kind = self._kind_at[target[onto, 0], target[onto, 1]]
            events[onto] += 1.0
            intensity[onto] += _intensity(needs[onto, kind])
        if beside_interact.any():
            around = pos[beside_interact, None, :] + MOVES[None, UP : RIGHT + 1, :]
            holders = held_by[around[..., 0], around[..., 1]]  # (P, 4); never the pusher
            kinds = self._kind_at[around[..., 0], around[..., 1]]
            need = np.take_along_axis(needs[beside_interact], np.maximum(kinds, 0), axis=1)
            pushes = holders >= 0
            events[beside_interact] += pushes.sum(axis=1)
            intensity[beside_interact] += np.where(pushes, _intensity(need), 0.0).sum(axis=1)
        return events, intensity

    def _move(self, rows: np.ndarray, acting: np.ndarray) -> None:
        """Carry out the legal moves; of several agents stepping into one cell, the one with
        the lowest random priority gets it (priorities drawn only when there is a contest)."""
        moving = np.flatnonzero((acting >= UP) & (acting <= RIGHT))
        if not len(moving):
            return
        agents = rows[moving]
        target = self._pos[agents] + MOVES[acting[moving]]
        cell = target[:, 0] * self.size + target[:, 1]
        winners = np.arange(len(agents))
        if len(np.unique(cell)) < len(cell):
            priority = self._rng.random(len(agents))
            order = np.lexsort((priority, cell))
            _, first = np.unique(cell[order], return_index=True)
            winners = order[first]
        self._pos[agents[winners]] = target[winners]

    # -- observations ----------------------------------------------------------------

    def _observe(self, rows: np.ndarray) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
        """Observations of `rows` (which may include agents that just left) and the masks
        of every agent, for the next step; the world seen is that of the live agents."""
        size = self.size
        count = len(rows)
        occupancy = self._occupancy()
        self._held_by = np.where(self._amenity_at >= 0, occupancy, -1)
        holder = occupancy[self._amenity_pos[:, 0], self._amenity_pos[:, 1]]
        pos = self._pos[rows]
        r, c = pos[:, 0], pos[:, 1]
        k = np.arange(count)

        shared = np.zeros((len(MAP_CHANNELS), size, size), dtype=np.float32)
        shared[1] = occupancy >= 0
        shared[2] = self._objects
        shared[3] = self._held_by >= 0
        maps = np.broadcast_to(shared, (count, *shared.shape)).copy()
        maps[k, 0, r, c] = 1.0  # an agent is in `self`, not in `agents`, of its own map
        maps[k, 1, r, c] = 0.0

        features = np.zeros((count, len(FEATURE_NAMES)), dtype=np.float32)
        scale = float(size - 1)
        features[:, 0:2] = self._needs[rows]
        features[:, 2:4] = pos / scale
        distance = np.abs(pos[:, None, :] - self._amenity_pos[None, :, :]).sum(axis=2)
        usable = (holder[None, :] < 0) | (holder[None, :] == rows[:, None])
        for kind, of_kind in enumerate(self._of_kind):
            cost = distance[:, of_kind] + np.where(usable[:, of_kind], 0, _FAR)
            choice = of_kind[np.argmin(cost, axis=1)]
            features[:, 4 + 2 * kind : 6 + 2 * kind] = (self._amenity_pos[choice] - pos) / scale
            features[:, 8 + kind] = ~usable[k, choice]
        around = pos[:, None, :] + MOVES[None, UP : RIGHT + 1, :]
        held_beside = self._held_by[around[..., 0], around[..., 1]]
        waiting = ((held_beside >= 0) & (held_beside != rows[:, None])).any(axis=1)
        features[:, 10] = waiting & (self._amenity_at[r, c] < 0)
        features[:, 11] = self._t / self.max_steps

        self._masks = self._legal_actions(occupancy)
        observations = {
            self.possible_agents[i]: {"map": maps[j], "features": features[j]}
            for j, i in enumerate(rows)
        }
        return observations, self._masks

    def _legal_actions(self, occupancy: np.ndarray) -> np.ndarray:
        """(population, 6) int8 masks: moves into the interior's free cells, interact on or
        next to an amenity, wait always."""
        masks = np.zeros((self.population, ACTION_COUNT), dtype=np.int8)
        masks[:, WAIT] = 1
        target = self._pos[:, None, :] + MOVES[None, UP : RIGHT + 1, :]
        tr, tc = target[..., 0], target[..., 1]
        masks[:, UP : RIGHT + 1] = self._interior[tr, tc] & (occupancy[tr, tc] < 0)
        masks[:, INTERACT] = self._near_amenity[self._pos[:, 0], self._pos[:, 1]]
        return masks

    def _infos(
        self,
        rows: np.ndarray,
        masks: np.ndarray,
        events: np.ndarray,
        intensity: np.ndarray,
        shared: np.ndarray,
    ) -> dict[str, dict[str, Any]]:
        return {
            self.possible_agents[i]: {
                MASK_KEY: masks[i].copy(),
                "queue_conflict_events": float(events[j]),
                "queue_conflict_intensity_sum": float(intensity[j]),
                "shared_meal_events": float(shared[j]),
            }
            for j, i in enumerate(rows)
        }

    # -- rendering -------------------------------------------------------------------

    def render(self) -> str | None:
        """The "ansi" picture: `size` lines, a character a cell: `#` wall, `.` floor, `F`
        food, `B` bed, and each live agent as its number in base 36 (`@` from the 37th on)."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "TownEnv.render() was called without a render mode; pass render_mode='ansi'"
            )
            return None
        picture = np.full((self.size, self.size), ".", dtype="<U1")
        picture[~self._interior] = "#"
        for j, (r, c) in enumerate(self._amenity_pos):
            picture[r, c] = "FB"[self._amenity_kind[j]]
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        for i in np.flatnonzero(self._alive):
            picture[self._pos[i, 0], self._pos[i, 1]] = digits[i] if i < len(digits) else "@"
        return "\n".join("".join(line) for line in picture)

    def close(self) -> None:
        """Nothing to release: the town holds no windows, files or processes."""


def _intensity(need: np.ndarray) -> np.ndarray:
    """A push's intensity from the pusher's need of that kind: in (0, 1], higher when
    more urgent."""
    return MIN_INTENSITY + (1.0 - MIN_INTENSITY) * (1.0 - need)


def _pairs(value: Any, key: str, shape: tuple[int, int], high: float) -> np.ndarray:
    """`options[key]` as a float array of `shape` with values in [0, high]; ValueError else."""
    values = np.array(value, dtype=np.float64)
    if values.shape != shape or not ((values >= 0.0) & (values <= high)).all():
        raise ValueError(f"options[{key!r}] must be {shape} (hunger, energy) values in [0, {high}]")
    return values


def _check_arguments(size: int, population: int, max_steps: int, render_mode: str | None) -> None:
    """ValueError, with the fix, for a town that cannot be built."""
    for name, value in (("size", size), ("population", population), ("max_steps", max_steps)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if size < 5:
        raise ValueError(f"size must be at least 5 (a 3 x 3 interior inside the walls), got {size}")
    if population < 1:
        raise ValueError(f"population must be at least 1, got {population}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    if render_mode not in (None, *TownEnv.metadata["render_modes"]):
        raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
    free = (size - 2) ** 2 - 2 * amenity_count(size, population)
    if population > free:
        raise ValueError(
            f"population {population} does not fit a town of size {size}: it has {free} free "
            "cells to start on; use a larger size or fewer agents"
        )


def parallel_env(**kwargs: Any) -> TownEnv:
    """A `TownEnv` (the `townlet/Town-v0` entry point); keyword arguments as `TownEnv`."""
    return TownEnv(**kwargs)


# -- the scripted expert -----------------------------------------------------------------

SEEK_BELOW = 0.5  # start for the amenity of the lowest need once it falls under this
FULL_AT = 0.95  # keep interacting on an amenity until its need reaches this


class TownExpert:
    """A polite scripted townsperson, batched over observation rows (one agent each).

    For each row, a pure function of that row (features, the map's size) and its mask:

    1. on an amenity whose need is below `FULL_AT`: interact (eat or sleep until full);
       on one whose need is met: step off it, toward the next goal (2 or 3);
    2. else, when the lowest need is below `SEEK_BELOW`, go for that kind's target (the
       feature offsets): interact on it; if someone else holds it, wait two steps away, and
       step back from one step away (so the holder can always get out: waiting right next to
       it could wall it in); otherwise walk toward it;
    3. else, content: step clear of an amenity it is on or next to (walking toward the other
       kind), so queues have room; otherwise wait.

    Walking takes the legal move that shortens the distance most (the longer axis first);
    when none does (someone in the way) it steps aside, left or right by the parity of its
    cell, so two agents blocking each other step apart rather than in step. It never pushes
    into a queue, and never chooses a masked action (wait instead).
    """

    accepts_action_mask: ClassVar[bool] = True

    def __call__(
        self,
        observation: np.ndarray | Mapping[str, np.ndarray],
        action_mask: np.ndarray | None = None,
    ) -> np.ndarray:
        if not isinstance(observation, Mapping):
            raise TypeError("the town expert reads the town's {'map', 'features'} observations")
        features = np.asarray(observation["features"], dtype=np.float64)
        scale = np.shape(observation["map"])[-1] - 1
        count = features.shape[0]
        legal = (
            np.ones((count, ACTION_COUNT), dtype=bool)
            if action_mask is None
            else np.asarray(action_mask).astype(bool).reshape(count, ACTION_COUNT)
        )
        needs = features[:, 0:2]
        cell = np.rint(features[:, 2:4] * scale).astype(np.int64)
        offsets = np.rint(features[:, 4:8] * scale).astype(np.int64).reshape(count, 2, 2)
        busy = features[:, 8:10] > 0.5
        distance = np.abs(offsets).sum(axis=2)  # (N, kind)
        k = np.arange(count)

        on = distance == 0
        eat = (on & (needs < FULL_AT)).any(axis=1)
        urgent = np.argmin(needs, axis=1)
        seeking = needs[k, urgent] < SEEK_BELOW
        near = distance <= 1
        clearing = ~seeking & near.any(axis=1)
        # the kind to walk toward: the urgent one, or the other one of the amenity to clear
        goal = np.where(seeking, urgent, np.where(near[:, FOOD], BED, FOOD))
        goal_distance = distance[k, goal]
        goal_busy = busy[k, goal] & seeking
        # done on an amenity: off it, even toward a busy goal (holding one amenity while
        # waiting for another could leave two agents each waiting for the other)
        leaving = on.any(axis=1) & ~eat
        approach = (seeking & ~goal_busy) | clearing | leaving
        back_off = goal_busy & (goal_distance == 1) & ~leaving
        queue = goal_busy & (goal_distance >= 3)

        actions = np.full(count, WAIT, dtype=np.int64)
        walk = _walk(offsets[k, goal], cell, legal, away=False)
        retreat = _walk(offsets[k, goal], cell, legal, away=True)
        actions = np.where(approach | queue, walk, actions)
        actions = np.where(back_off, retreat, actions)
        actions = np.where(eat, INTERACT, actions)
        return np.where(legal[k, actions], actions, WAIT).astype(np.int64)

    def __repr__(self) -> str:
        return f"TownExpert(seek_below={SEEK_BELOW}, full_at={FULL_AT})"


def _walk(offset: np.ndarray, cell: np.ndarray, legal: np.ndarray, *, away: bool) -> np.ndarray:
    """(N,) the move toward `offset` (target minus own cell), or away from it: the legal
    move that changes the distance most in the wanted direction, the longer axis first;
    toward a target and blocked, a sidestep by the cell's parity; wait when nothing fits."""
    count = len(offset)
    after = offset[:, None, :] - MOVES[None, UP : RIGHT + 1, :]  # (N, 4, 2)
    change = np.abs(after).sum(axis=2) - np.abs(offset).sum(axis=1)[:, None]  # -1 or +1
    vertical = np.abs(offset[:, 0]) >= np.abs(offset[:, 1])
    axis_of_move = np.array([0, 0, 1, 1])
    off_axis = axis_of_move[None, :] != np.where(vertical, 0, 1)[:, None]
    gain = -change if not away else change
    score = gain * 4 - off_axis  # more gain first, then the longer axis
    moves_legal = legal[:, UP : RIGHT + 1]
    score = np.where(moves_legal & (gain > 0), score, -_FAR)
    best = np.argmax(score, axis=1)
    moved = score[np.arange(count), best] > -_FAR
    actions = np.where(moved, best + UP, WAIT)
    if away:
        return actions
    # blocked: step aside, across the axis of travel, one way or the other by parity
    parity = (cell.sum(axis=1) % 2).astype(bool)
    first = np.where(vertical, np.where(parity, LEFT, RIGHT), np.where(parity, UP, DOWN))
    second = np.where(vertical, np.where(parity, RIGHT, LEFT), np.where(parity, DOWN, UP))
    k = np.arange(count)
    aside = np.where(legal[k, first], first, np.where(legal[k, second], second, WAIT))
    return np.where(moved | (np.abs(offset).sum(axis=1) == 0), actions, aside)


def town_expert() -> TownExpert:
    """The scripted expert for `townlet/Town-v0` (`--policy scripted`)."""
    return TownExpert()


__all__ = [
    "FEATURE_NAMES",
    "MAP_CHANNELS",
    "TownEnv",
    "TownExpert",
    "parallel_env",
    "town_expert",
]
