"""`StrategyContract`: the checks every strategy distribution should pass in its own tests.

from townlet_core.testing import StrategyContract

class TestCEMContract(StrategyContract):
    strategy_name = "cem"
    distribution = "townlet-example-cem"
    plugin_module = "townlet_example_cem.plugin"
    short_run_config = {"iterations": 2, "population": 8}
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from townlet_core.__about__ import ENTRY_POINT_GROUP
from townlet_core.contract.spec import StrategySpec, import_object
from townlet_core.contract.strategy import TrainingStrategy
from townlet_core.dto import TrainingResultDTO
from townlet_core.runtime.orchestrator import Orchestrator
from townlet_core.runtime.registry import StrategyRegistry


class StrategyContract:
    """Subclass and set the class attributes; each `test_*` method pins one rule."""

    #: The strategy's name (`townlet train --strategy NAME`).
    strategy_name: ClassVar[str]
    #: The distribution that provides it, as in its pyproject's `name`.
    distribution: ClassVar[str]
    #: The entry point's value: the light plugin module.
    plugin_module: ClassVar[str]
    #: The strategy's config section for a run that finishes in seconds.
    short_run_config: ClassVar[dict[str, Any]] = {}
    #: Plugin modules of strategies this one composes, registered for the short run.
    required_plugin_modules: ClassVar[tuple[str, ...]] = ()
    #: Other sections of the short run's config (e.g. of composed strategies).
    short_run_extra_config: ClassVar[dict[str, Any]] = {}

    def _spec(self) -> StrategySpec:
        registry = StrategyRegistry(discover=False)
        registry.add_plugin(importlib.import_module(self.plugin_module))
        return registry.resolve(self.strategy_name)

    def test_entry_point_name_equals_strategy_name(self) -> None:
        dist = metadata.distribution(self.distribution)
        entry_points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        assert [ep.name for ep in entry_points if ep.value == self.plugin_module] == [
            self.strategy_name
        ], (
            f"{self.distribution} must declare [project.entry-points.'{ENTRY_POINT_GROUP}'] "
            f"{self.strategy_name} = '{self.plugin_module}'"
        )

    def test_plugin_registers_the_strategy(self) -> None:
        spec = self._spec()
        assert spec.name == self.strategy_name

    def test_config_model_has_defaults_and_rejects_unknown_keys(self) -> None:
        model = import_object(self._spec().config_model)
        assert isinstance(model, type) and issubclass(model, BaseModel)
        defaults = model()  # every field needs a default: `townlet train` works with no config
        assert model.model_config.get("extra") == "forbid", "unknown keys must be rejected"
        schema = model.model_json_schema()
        assert schema["type"] == "object"
        json.dumps(schema)
        assert model.model_validate_json(defaults.model_dump_json()) == defaults

    def test_plugin_and_config_modules_import_no_torch(self) -> None:
        config_module = self._spec().config_model.partition(":")[0]
        code = (
            "import sys\n"
            f"import {self.plugin_module}\n"
            f"import {config_module}\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not loaded, loaded\n"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stderr

    def test_factory_returns_a_training_strategy(self) -> None:
        spec = self._spec()
        strategy = import_object(spec.factory)()
        assert isinstance(strategy, TrainingStrategy)
        assert strategy.name == spec.name
        assert strategy.requires_torch == spec.requires_torch

    def test_short_run_returns_a_valid_result(self, tmp_path: Path) -> None:
        registry = StrategyRegistry(discover=False)
        for module in (*self.required_plugin_modules, self.plugin_module):
            registry.add_plugin(
                importlib.import_module(module),
                distribution=self.distribution,
                version=metadata.version(self.distribution),
            )
        run_dir = tmp_path / "run"
        result = Orchestrator(registry, quiet=True, progress=False).run(
            self.strategy_name,
            config={
                "runs_root": str(tmp_path / "runs"),
                self.strategy_name: self.short_run_config,
                **self.short_run_extra_config,
            },
            run_dir=run_dir,
        )
        assert isinstance(result, TrainingResultDTO)
        assert result.strategy == self.strategy_name
        assert type(result).model_validate_json(result.model_dump_json()) == result
        written = json.loads((run_dir / "result.json").read_text())
        assert type(result).model_validate(written) == result
        for artifact in result.artifacts.values():
            assert (run_dir / artifact).exists(), f"artifact {artifact} is missing"
