"""One policy per group of agents: a parallel env that shows a run only its group.

A shared policy reads one observation space, so a world whose kinds of agent differ (a
shopkeeper and its customers, agents with different sensors) trains one policy per kind.
`AgentGroup` wraps a PettingZoo parallel env so that its agents are only the group's; the
other agents still live in the world, acting by a fixed policy (`others`: uniform random
over their masks by default, or any batched policy such as a scripted expert or a checkpoint
loaded with `townlet_core.load_policy`). A run trains the group's policy against the others'
fixed behaviour; each group is its own run (or anneal stage), so the groups' policies are
trained in turn, each against the others' latest, as in independent learning.

Use it in a factory and name that factory as the env:

    # mytown.py
    from townlet_core.envs.groups import grouped
    from townlet_core.envs.town import parallel_env, town_expert

    first_agent = grouped(parallel_env, agents=["agent_0"], others=town_expert())

    # townlet train --strategy ppo --set ppo.env=mytown:first_agent --set ppo.num_envs=4

Like `agents.py`, this module never imports PettingZoo: it only calls the parallel API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from townlet_core.data.action_space import DISCRETE
from townlet_core.envs.policies import Policy, accepts_action_mask, as_output
from townlet_core.envs.spaces import INFO_MASK_KEY, action_space_of
from townlet_core.errors import ConfigError


class AgentGroup:
    """`env` with only `agents` visible; the others act by `others` (see the module)."""

    def __init__(self, env: Any, agents: Sequence[str], others: Policy | None = None) -> None:
        known = list(env.possible_agents)
        unknown = [agent for agent in agents if agent not in known]
        if unknown or not agents:
            raise ConfigError(
                f"agent group {list(agents)}: {', '.join(map(repr, unknown)) or 'no agents'} "
                f"not among the env's agents ({', '.join(known)})"
            )
        self.env = env
        self.group = [agent for agent in known if agent in set(agents)]
        self.possible_agents = list(self.group)
        self.others = [agent for agent in known if agent not in set(agents)]
        self.metadata = getattr(env, "metadata", {})
        self._policy = others
        #: The default others' generator (re-seeded by each seeded reset).
        self._rng = np.random.default_rng(0)
        self._observations: dict[str, Any] = {}
        self._infos: dict[str, Any] = {}

    @property
    def agents(self) -> list[str]:
        return [agent for agent in self.env.agents if agent in self.group]

    def observation_space(self, agent: str) -> Any:
        return self.env.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        return self.env.action_space(agent)

    def _mine(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {agent: value for agent, value in values.items() if agent in self.group}

    def _keep(self, observations: Mapping[str, Any], infos: Mapping[str, Any]) -> None:
        for agent in self.others:
            if agent in observations:
                self._observations[agent] = observations[agent]
                self._infos[agent] = infos.get(agent, {})

    def _others_actions(self) -> dict[str, Any]:
        """Each live other agent's action from the fixed policy, or uniform over its
        allowed actions (a batch of one each: the others need not share a space)."""
        actions: dict[str, Any] = {}
        for agent in self.env.agents:
            if agent in self.group:
                continue
            space = action_space_of(self.env.action_space(agent), agent)
            mask = self._infos.get(agent, {}).get(INFO_MASK_KEY)
            allowed = None if mask is None else np.asarray(mask, dtype=bool)[None]
            if self._policy is None:
                if space.kind != DISCRETE:
                    actions[agent] = self.env.action_space(agent).sample()
                    continue
                legal = np.ones((1, space.count), bool) if allowed is None else allowed
                actions[agent] = int((self._rng.random(legal.shape) * legal).argmax())
                continue
            observation = self._observations[agent]
            batch = (
                {key: np.asarray(value)[None] for key, value in observation.items()}
                if isinstance(observation, Mapping)
                else np.asarray(observation)[None]
            )
            if allowed is not None and accepts_action_mask(self._policy):
                result = self._policy(batch, action_mask=allowed)  # type: ignore[call-arg]
            else:
                result = self._policy(batch)
            output = as_output(result, 1, space, f"the agent group's others ({agent})")
            actions[agent] = output.actions[0]
        return actions

    def reset(
        self, seed: int | None = None, options: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        observations, infos = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, 1])
        self._observations, self._infos = {}, {}
        self._keep(observations, infos)
        return self._mine(observations), self._mine(infos)

    def step(self, actions: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
        joint = {**self._others_actions(), **actions}
        observations, rewards, terminations, truncations, infos = self.env.step(joint)
        self._keep(observations, infos)
        return (
            self._mine(observations),
            self._mine(rewards),
            self._mine(terminations),
            self._mine(truncations),
            self._mine(infos),
        )

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if callable(close):
            close()


def grouped(
    factory: Callable[..., Any], *, agents: Sequence[str], others: Policy | None = None
) -> Callable[..., AgentGroup]:
    """A factory of `factory`'s env showing only `agents` (keyword arguments pass through)."""

    def make(**kwargs: Any) -> AgentGroup:
        return AgentGroup(factory(**kwargs), agents, others)

    return make


__all__ = ["AgentGroup", "grouped"]
