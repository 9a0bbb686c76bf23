"""The example configs in examples/configs/ and examples/ are valid for the strategy they
name (each was run as documented in its header; running them here would cost a minute each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from townlet_core.runtime.config import load_config_file

FOLDER = Path(__file__).parents[1] / "examples"
#: The configs in examples/configs/, and examples/town.yaml (the issue's own path for it).
EXAMPLES = sorted([*(FOLDER / "configs").glob("*.yaml"), *FOLDER.glob("*.yaml")])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_an_example_config_validates(path: Path) -> None:
    pytest.importorskip("torch")
    from townlet_strategies_anneal.config import AnnealConfig
    from townlet_strategies_bc.config import BCConfig
    from townlet_strategies_ppo.config import PPOConfig

    models = {"bc": BCConfig, "ppo": PPOConfig}
    document = load_config_file(path)
    strategy = document["strategy"]
    assert strategy in {"ppo", "anneal"}
    if strategy == "ppo":
        PPOConfig.model_validate(document["ppo"])
    else:
        anneal = AnnealConfig.model_validate(document["anneal"])
        for stage in anneal.schedule:  # each stage's overrides, by its own strategy's model
            models[stage.strategy].model_validate(stage.overrides)


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"pendulum-ppo.yaml", "minigrid-cnn.yaml", "town.yaml"}
