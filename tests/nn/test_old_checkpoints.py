"""Checkpoints written before other action spaces existed load and act as they did.

The fixtures in tests/fixtures/checkpoints/ were written by townlet-core at commit 788f600
(format version 1: no `action_space`, `action_mapping` or the network's newer fields), with
the outputs that code computed for a few inputs (`expected_outputs.json`). The network now
evaluates the actor's and critic's heads as one stacked matmul, whose sums run in another
order than two separate layers': the outputs agree to float32 rounding (measured: 9e-10 on
logits of about 0.01), and the greedy actions exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from townlet_core.checkpoints import read_info
from townlet_core.nn import load_checkpoint, save_checkpoint

FIXTURES = Path(__file__).parents[1] / "fixtures" / "checkpoints"
EXPECTED = json.loads((FIXTURES / "expected_outputs.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_old_checkpoint_gives_the_outputs_it_gave(name: str) -> None:
    raw = json.loads((FIXTURES / name / "checkpoint.json").read_text())
    assert raw["format_version"] == 1 and "action_space" not in raw
    network, info = load_checkpoint(FIXTURES / name)
    assert info.space().kind == "discrete"
    case = EXPECTED[name]
    features = torch.tensor(case["features"])
    map_ = None if case["map"] is None else torch.tensor(case["map"])
    with torch.no_grad():
        logits, values = network(features, map_)
    expected_logits = torch.tensor(case["logits"])
    torch.testing.assert_close(logits, expected_logits, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(values, torch.tensor(case["values"]), rtol=1e-6, atol=1e-8)
    assert torch.equal(logits.argmax(-1), expected_logits.argmax(-1))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_old_checkpoint_saved_again_stays_version_1_with_the_same_tensors(
    tmp_path: Path, name: str
) -> None:
    network, info = load_checkpoint(FIXTURES / name)
    save_checkpoint(
        tmp_path / "again", network, strategy="bc", strategy_version="0.1.0", seed=info.seed
    )
    assert read_info(tmp_path / "again").format_version == 1
    before = load_file(str(FIXTURES / name / "weights.safetensors"))
    after = load_file(str(tmp_path / "again" / "weights.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)
