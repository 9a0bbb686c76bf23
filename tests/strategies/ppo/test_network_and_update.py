"""The stacked actor-critic equals separate actor and critic layers, and the PPO update
drives the optimiser through its public API and undoes an update whose loss is not finite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.nn import build_network, load_checkpoint, save_checkpoint
from townlet_core.nn.distributions import Categorical
from townlet_core.nn.network import ACTOR, CRITIC, Block, PolicyNetwork, sigmoid_tanh
from townlet_strategies_ppo.config import PPOConfig
from townlet_strategies_ppo.losses import NonFiniteError
from townlet_strategies_ppo.update import Batch, make_optimizer, ppo_update

FLAT = ObservationSpec(features_dim=4)
SEPARATE_NAMES = {
    f"{body}.{index}.{kind}"
    for body in ("actor_body", "critic_body")
    for index in (0, 2)
    for kind in ("weight", "bias")
} | {f"{head}.{kind}" for head in ("policy_head", "value_head") for kind in ("weight", "bias")}


def _network(seed: int = 0, spec: NetworkSpec | None = None) -> PolicyNetwork:
    return build_network(spec or NetworkSpec(), FLAT, 3, seed=seed)


def _separate_forward(
    layers: dict[str, torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The network as two plain MLPs, from the checkpoint's tensors (the pre-stacking code)."""
    actor, critic = x, x
    for index in (0, 2):
        actor = torch.tanh(
            functional.linear(
                actor, layers[f"actor_body.{index}.weight"], layers[f"actor_body.{index}.bias"]
            )
        )
        critic = torch.tanh(
            functional.linear(
                critic, layers[f"critic_body.{index}.weight"], layers[f"critic_body.{index}.bias"]
            )
        )
    logits = functional.linear(actor, layers["policy_head.weight"], layers["policy_head.bias"])
    values = functional.linear(critic, layers["value_head.weight"], layers["value_head.bias"])
    return logits, values.squeeze(-1)


def _objective(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    chosen = Categorical(logits.shape[-1]).log_prob(logits, actions)
    return -chosen.mean() + (values - 1.0).pow(2).mean()


def test_stacked_forward_equals_separate_actor_and_critic_values_log_probs_and_gradients():
    network = _network()
    layers = {k: v.clone().requires_grad_() for k, v in network.state_dict().items()}
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    actions = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(2))

    logits, values = network(x)
    expected_logits, expected_values = _separate_forward(layers, x)
    torch.testing.assert_close(logits, expected_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(values, expected_values, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        Categorical(3).log_prob(logits, actions),
        Categorical(3).log_prob(expected_logits, actions),
        rtol=0,
        atol=1e-6,
    )
    torch.testing.assert_close(network.logits(x), expected_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(network.value(x), expected_values, rtol=0, atol=1e-6)

    _objective(logits, values, actions).backward()
    _objective(expected_logits, expected_values, actions).backward()
    bodies = network.bodies
    assert bodies is not None
    stacked = dict(bodies.named_parameters())
    names = bodies.separate_names("")
    assert set(names) == SEPARATE_NAMES  # the heads are stacked too
    for name, block in names.items():
        grad = stacked[block.own].grad
        assert grad is not None
        torch.testing.assert_close(
            block.of(grad), layers[name].grad, rtol=1e-5, atol=1e-7, msg=name
        )
    # the value head's unused columns get no gradient at all, so Adam never moves them
    head_weight, head_bias = bodies.heads()
    assert head_weight.grad is not None and head_bias.grad is not None
    assert not head_weight.grad[CRITIC, :, 1:].any() and not head_bias.grad[CRITIC, :, 1:].any()


def test_the_sigmoid_form_of_tanh_equals_torch_tanh_in_value_and_gradient():
    x = torch.cat(
        [
            torch.linspace(-30.0, 30.0, 2001),
            torch.tensor([0.0, -0.0, float("inf"), float("-inf")]),
        ]
    ).requires_grad_()
    reference = x.detach().clone().requires_grad_()
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))

    fast, exact = sigmoid_tanh(x), torch.tanh(reference)
    (fast * weights).sum().backward()
    (exact * weights).sum().backward()

    torch.testing.assert_close(fast, exact, rtol=0, atol=3e-7)
    assert x.grad is not None and reference.grad is not None
    torch.testing.assert_close(x.grad, reference.grad, rtol=0, atol=1e-6)
    assert torch.isnan(sigmoid_tanh(torch.tensor([float("nan")]))).all()


def test_a_forward_pass_without_gradients_agrees_with_one_with_them():
    network = _network()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain_logits, plain_values = network(x)
    logits, values = network(x)  # with gradients: the sigmoid form
    torch.testing.assert_close(logits.detach(), plain_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(values.detach(), plain_values, rtol=0, atol=1e-6)


def test_actor_and_critic_stacks_start_as_separate_orthogonal_layers():
    bodies = _network().bodies
    assert bodies is not None
    hidden = bodies.weight1  # (2, 64, 64): each stack's square matrix, gain sqrt(2)
    for stack in (ACTOR, CRITIC):
        block = Block("weight1", stack, "weight").of(hidden)
        torch.testing.assert_close(block @ block.T, 2.0 * torch.eye(64), rtol=0, atol=1e-5)
    assert not torch.equal(hidden[ACTOR], hidden[CRITIC])


def test_checkpoints_keep_the_separate_layer_names_and_round_trip(tmp_path):
    network = _network(seed=0)
    assert set(network.state_dict()) == SEPARATE_NAMES
    assert network.state_dict()["actor_body.2.weight"].shape == (64, 64)
    save_checkpoint(tmp_path / "ckpt", network, strategy="ppo", strategy_version="0", seed=0)
    loaded, _info = load_checkpoint(tmp_path / "ckpt")
    x = torch.randn(8, 4)
    for mine, theirs in zip(network(x), loaded(x), strict=True):
        assert torch.equal(mine, theirs)


def test_a_state_dict_in_the_separate_layout_loads_into_the_stacked_network():
    source = _network(seed=0)
    target = _network(seed=1)
    separate = {k: v.clone() for k, v in source.state_dict().items()}  # as written to disk
    target.load_state_dict(separate)
    x = torch.randn(8, 4)
    assert torch.equal(source(x)[0], target(x)[0])
    assert torch.equal(source(x)[1], target(x)[1])


def test_a_shared_trunk_network_keeps_one_stack():
    network = _network(spec=NetworkSpec(shared_trunk=True))
    names = set(network.state_dict())
    assert "actor_body.0.weight" in names and not any(n.startswith("critic") for n in names)


def test_a_fresh_network_draws_its_weights_as_separate_layers_would():
    """Stacking changed no seed's initial weights: the draws are those of separate layers
    made in the order the network always made them (hidden layers, policy, value head)."""
    network = _network(seed=7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        expected: dict[str, torch.Tensor] = {}
        for index, (inputs, outputs) in enumerate(((4, 64), (64, 64))):
            for body in ("actor_body", "critic_body"):
                weight = torch.nn.init.orthogonal_(torch.empty(outputs, inputs), 2**0.5)
                expected[f"{body}.{2 * index}.weight"] = weight
                expected[f"{body}.{2 * index}.bias"] = torch.zeros(outputs)
        for head, outputs, gain in (("policy_head", 3, 0.01), ("value_head", 1, 1.0)):
            layer = torch.nn.Linear(64, outputs)
            torch.nn.init.orthogonal_(layer.weight, gain)
            expected[f"{head}.weight"] = layer.weight.detach()
            expected[f"{head}.bias"] = torch.zeros(outputs)
    state = network.state_dict()
    assert set(state) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name


@pytest.mark.parametrize(
    "spec",
    [NetworkSpec(), NetworkSpec(shared_trunk=True), NetworkSpec(normalize_observations=True)],
    ids=["stacked", "shared-trunk", "normalised"],
)
def test_acting_gives_the_logits_bit_for_bit_and_sees_weights_change_in_place(spec):
    network = _network(spec=spec)
    if network.observation_normalizer is not None:
        network.observation_normalizer.update(torch.randn(50, 4) * 3 + 1)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    actor = network.acting()
    with torch.inference_mode():
        before = actor(x)
        assert torch.equal(before, network.logits(x))
    optimizer = make_optimizer(network, 1e-2)
    network.logits(x).pow(2).sum().backward()  # type: ignore[no-untyped-call]
    optimizer.step()  # in place: the views taken before see the new weights
    with torch.inference_mode():
        moved = actor(x)
        assert torch.equal(moved, network.logits(x))
    assert not torch.equal(moved, before)


def test_the_value_heads_unused_columns_stay_zero_through_training_and_checkpoints(tmp_path):
    network = _network()
    optimizer = make_optimizer(network, 1e-2)
    config = PPOConfig(update_epochs=3, minibatch_size=16, num_envs=4, num_steps=8)
    ppo_update(network, optimizer, _batch(network, 32), config, 0.2, np.random.default_rng(0))
    bodies = network.bodies
    assert bodies is not None
    weight, bias = bodies.heads()
    assert weight[ACTOR].abs().sum() > 0 and weight[CRITIC, :, 0].abs().sum() > 0
    assert not weight[CRITIC, :, 1:].any() and not bias[CRITIC, :, 1:].any()
    save_checkpoint(tmp_path / "ckpt", network, strategy="ppo", strategy_version="0", seed=0)
    loaded, _info = load_checkpoint(tmp_path / "ckpt")
    assert loaded.bodies is not None
    assert torch.equal(loaded.bodies.heads()[0], weight.detach())


def _batch(network: PolicyNetwork, size: int, returns: torch.Tensor | None = None) -> Batch:
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(size, 4, generator=generator)
    actions = torch.randint(0, 3, (size,), generator=generator)
    with torch.no_grad():
        logits, values = network(features)
    old_log_probs = Categorical(3).log_prob(logits, actions)
    advantages = torch.randn(size, generator=generator)
    return Batch(
        features=features,
        map=None,
        actions=actions,
        old_log_probs=old_log_probs,
        old_values=values,
        advantages=advantages,
        returns=values + advantages if returns is None else returns,
        rewards=torch.zeros(size),
    )


def test_the_update_takes_one_public_optimizer_step_per_mini_batch():
    network = _network()
    optimizer = make_optimizer(network, 1e-3)
    steps: list[int] = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    config = PPOConfig(update_epochs=3, minibatch_size=16, num_envs=4, num_steps=16)
    stats = ppo_update(
        network, optimizer, _batch(network, 64), config, 0.2, np.random.default_rng(0)
    )
    assert len(steps) == stats.updates == 3 * 4


def test_a_non_finite_loss_raises_and_leaves_weights_and_optimizer_as_before_the_update():
    network = _network()
    optimizer = make_optimizer(network, 1e-3)
    config = PPOConfig(update_epochs=2, minibatch_size=16, num_envs=4, num_steps=8)
    rng = np.random.default_rng(0)
    ppo_update(network, optimizer, _batch(network, 32), config, 0.2, rng)  # Adam has state now
    weights = {k: v.clone() for k, v in network.state_dict().items()}
    moments = [
        {key: value.clone() for key, value in state.items()} for state in optimizer.state.values()
    ]
    bad = _batch(network, 32, returns=torch.full((32,), float("nan")))

    with pytest.raises(NonFiniteError) as info:
        ppo_update(network, optimizer, bad, config, 0.2, rng)

    assert str(info.value).startswith("PPO loss is nan (policy ")
    assert str(info.value).endswith("value nan) at mini-batch 1 of epoch 1")
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    for state, before in zip(optimizer.state.values(), moments, strict=True):
        assert set(state) == set(before) == {"step", "exp_avg", "exp_avg_sq"}
        for key, value in before.items():
            assert torch.equal(state[key], value), key
