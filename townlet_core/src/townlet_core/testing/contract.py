"""`StrategyContract`: the checks every strategy distribution should pass in its own tests.

from townlet_core.testing import StrategyContract

class TestCEMContract(StrategyContract):
    strategy_name = "cem"
    distribution = "townlet-example-cem"
    plugin_module = "townlet_example_cem.plugin"
    short_run_config = {"iterations": 2, "population": 8}

Besides the checks on the plugin (entry point, spec, config model, torch isolation), the
short run is run for real: its result round-trips, two runs with one seed give one result
(`deterministic`), and the policy checkpoint the result names exists, reads back and
warm-starts a second run (`produces_checkpoint`). The warm start goes through
`WarmStartPlugin`, a one-stage composing strategy you can also use in your own tests.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from townlet_core import (
    ENTRY_POINT_GROUP,
    Orchestrator,
    SpecCollector,
    StrategyRegistry,
    StrategySpec,
    TrainingContext,
    TrainingResultDTO,
    TrainingStrategy,
    hookimpl,
    torch_available,
)

#: The composing strategy `WarmStartPlugin` registers, and the stage it runs.
WARM_START_STRATEGY = "contract_warm_start"
WARM_START_STAGE = "warm"

#: Result and checkpoint fields that hold wall-clock facts; they differ between equal runs.
CLOCK_FIELDS = frozenset({"started_at", "finished_at", "updated_at", "created_at", "duration_sec"})


class WarmStartConfig(BaseModel):
    """Config of `contract_warm_start`: which strategy to run, from which checkpoint."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field("", description="The strategy to run as the single stage.")
    checkpoint: str = Field("", description="The checkpoint handed over as its warm start.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of that strategy's config section."
    )


def run_warm_start(context: TrainingContext, config: WarmStartConfig) -> TrainingResultDTO:
    """Run `config.strategy` as stage `warm`, warm-started from `config.checkpoint`; the
    result names the stage's checkpoint (relative to this run's directory)."""
    stage = context.run_strategy(
        config.strategy,
        config.overrides,
        stage=WARM_START_STAGE,
        warm_start=Path(config.checkpoint),
    )
    checkpoint = None
    if stage.checkpoint is not None:
        checkpoint = str(Path("stages") / WARM_START_STAGE / stage.checkpoint)
    return TrainingResultDTO(**context.run_fields(), checkpoint=checkpoint)


class WarmStartPlugin:
    """Registers `contract_warm_start`: `registry.add_plugin(WarmStartPlugin())`."""

    @hookimpl
    def townlet_register_strategies(self, specs: SpecCollector) -> None:
        specs.add(
            StrategySpec(
                name=WARM_START_STRATEGY,
                summary="Test kit: run one strategy warm-started from a checkpoint",
                config_model=f"{__name__}:WarmStartConfig",
                run=f"{__name__}:run_warm_start",
            )
        )


def warm_start_section(
    strategy: str, checkpoint: Path | str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `contract_warm_start` config section that warm-starts `strategy`."""
    return {"strategy": strategy, "checkpoint": str(checkpoint), "overrides": dict(overrides or {})}


def distribution_of(module: str) -> str | None:
    """The installed distribution that provides `module`'s top-level package, if any."""
    providers = metadata.packages_distributions().get(module.partition(".")[0], [])
    return providers[0] if providers else None


def register_plugins(registry: StrategyRegistry, modules: Iterable[str]) -> StrategyRegistry:
    """Import each plugin module and add it to `registry` under its installed distribution."""
    for module in modules:
        distribution = distribution_of(module)
        if distribution is None:
            registry.add_plugin(importlib.import_module(module))
        else:
            registry.add_plugin(
                importlib.import_module(module),
                distribution=distribution,
                version=metadata.version(distribution),
            )
    return registry


def comparable(value: Any, replacements: Mapping[str, str], drop: frozenset[str]) -> Any:
    """`value` (parsed JSON) without the `drop` keys at any depth, with each absolute path
    prefix in `replacements` replaced by its placeholder: what two equal runs share."""
    if isinstance(value, dict):
        return {
            key: comparable(item, replacements, drop)
            for key, item in value.items()
            if key not in drop
        }
    if isinstance(value, list):
        return [comparable(item, replacements, drop) for item in value]
    if isinstance(value, str):
        for prefix, placeholder in replacements.items():
            value = value.replace(prefix, placeholder)
    return value


def _files(root: Path) -> list[Path]:
    """`root` itself when it is a file, else every file under it (relative paths)."""
    if root.is_file():
        return [Path()]
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


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
    #: Two short runs with one seed give equal results and identical checkpoint and artifact
    #: files. Set False only with the reason in `nondeterministic_because`.
    deterministic: ClassVar[bool] = True
    nondeterministic_because: ClassVar[str] = ""
    #: Result (and JSON artifact) fields that measure wall-clock time, such as a
    #: steps-per-second figure; left out when two runs are compared (with `CLOCK_FIELDS`).
    timing_fields: ClassVar[frozenset[str]] = frozenset()
    #: Files (relative to the run directory) that may differ between two runs with one seed
    #: although the run is deterministic, each with the reason.
    differing_files: ClassVar[dict[str, str]] = {}
    #: The run produces a policy checkpoint and names it in `result.checkpoint`.
    produces_checkpoint: ClassVar[bool] = True
    #: Overrides of the short run's section for the run warm-started from its checkpoint.
    warm_start_overrides: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------------ helpers

    def registry(self) -> StrategyRegistry:
        """A registry over this strategy's plugin and those it composes, nothing else."""
        return register_plugins(
            StrategyRegistry(discover=False), (*self.required_plugin_modules, self.plugin_module)
        )

    def short_run(
        self, root: Path, *, seed: int = 0, registry: StrategyRegistry | None = None
    ) -> TrainingResultDTO:
        """The short run into `root/run`, with its own runs root `root/runs`."""
        return Orchestrator(registry or self.registry(), quiet=True, progress=False).run(
            self.strategy_name,
            config={
                "runs_root": str(root / "runs"),
                self.strategy_name: self.short_run_config,
                **self.short_run_extra_config,
            },
            seed=seed,
            run_dir=root / "run",
        )

    def _spec(self) -> StrategySpec:
        return self.registry().resolve(self.strategy_name)

    def _comparable_json(self, path: Path, root: Path) -> Any:
        """A JSON (or JSON lines) file's data as two equal runs share it."""
        text = path.read_text(encoding="utf-8")
        data = (
            [json.loads(line) for line in text.splitlines()]
            if path.suffix == ".jsonl"
            else json.loads(text)
        )
        replacements = {str(root.resolve()): "<root>", str(root): "<root>"}
        return comparable(data, replacements, CLOCK_FIELDS | self.timing_fields)

    # ------------------------------------------------------------------ the plugin

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
        model = self.registry().config_model(self.strategy_name)
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

    def test_spec_builds_a_training_strategy(self) -> None:
        spec = self._spec()
        if spec.requires_torch and not torch_available():
            pytest.skip(f"strategy '{spec.name}' needs torch, which is not installed")
        loaded = self.registry().load(self.strategy_name)
        assert isinstance(loaded.strategy, TrainingStrategy)
        assert loaded.spec == spec

    # ------------------------------------------------------------------ a real run

    def test_short_run_returns_a_valid_result(self, tmp_path: Path) -> None:
        result = self.short_run(tmp_path)
        run_dir = tmp_path / "run"
        assert isinstance(result, TrainingResultDTO)
        assert result.strategy == self.strategy_name
        assert type(result).model_validate_json(result.model_dump_json()) == result
        written = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        assert type(result).model_validate(written) == result
        for artifact in result.artifacts.values():
            assert (run_dir / artifact).exists(), f"artifact {artifact} is missing"

    def test_same_seed_gives_the_same_result_and_files(self, tmp_path: Path) -> None:
        if not self.deterministic:
            assert self.nondeterministic_because, (
                "deterministic = False needs the reason in nondeterministic_because"
            )
            pytest.skip(f"not deterministic: {self.nondeterministic_because}")
        first = self.short_run(tmp_path / "a", seed=11)
        second = self.short_run(tmp_path / "b", seed=11)
        a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
        assert self._comparable_json(a / "result.json", a.parent) == self._comparable_json(
            b / "result.json", b.parent
        ), "result.json differs between two runs with one seed (beyond times and paths)"
        assert (first.checkpoint, first.artifacts) == (second.checkpoint, second.artifacts)
        named = {*first.artifacts.values(), *([first.checkpoint] if first.checkpoint else [])}
        for relative in sorted(named):
            files = _files(a / relative)
            assert files == _files(b / relative), f"{relative} holds different files"
            for file in files:
                left, right = a / relative / file, b / relative / file
                if str(left.relative_to(a)) in self.differing_files:
                    continue
                if left.suffix in (".json", ".jsonl"):
                    same = self._comparable_json(left, a.parent) == self._comparable_json(
                        right, b.parent
                    )
                else:
                    same = left.read_bytes() == right.read_bytes()
                assert same, f"{left.relative_to(a)} differs between two runs with one seed"

    def test_result_names_the_checkpoint_it_produced(self, tmp_path: Path) -> None:
        result = self.short_run(tmp_path)
        if not self.produces_checkpoint:
            assert result.checkpoint is None, (
                f"the result names checkpoint {result.checkpoint!r}, but the contract says "
                "produces_checkpoint = False"
            )
        else:
            assert result.checkpoint is not None, (
                "result.checkpoint is None: name the policy checkpoint (relative to the run "
                "directory), or set produces_checkpoint = False"
            )
            run_dir = (tmp_path / "run").resolve()
            path = (run_dir / result.checkpoint).resolve()
            assert path.is_relative_to(run_dir) and path.exists(), (
                f"checkpoint {result.checkpoint!r} is not inside the run directory"
            )
            self.check_checkpoint_reads_back(path)

    def check_checkpoint_reads_back(self, path: Path) -> None:
        """A shared-format checkpoint folder reads back: its description parses and, with
        torch installed, the network loads with the weights' checksum verified."""
        from townlet_core.checkpoints import INFO_FILE, read_info

        if not (path / INFO_FILE).is_file():
            return  # the strategy's own format: existing is all the kit can check
        info = read_info(path)
        assert info.action_dim >= 1
        if torch_available():
            from townlet_core.nn import load_checkpoint

            load_checkpoint(path)

    def test_a_second_run_warm_starts_from_the_checkpoint(self, tmp_path: Path) -> None:
        if not self.produces_checkpoint:
            pytest.skip(f"{self.strategy_name} produces no checkpoint to warm-start from")
        registry = self.registry()
        registry.add_plugin(WarmStartPlugin())
        first = self.short_run(tmp_path / "first", registry=registry)
        assert first.checkpoint is not None
        checkpoint = tmp_path / "first" / "run" / first.checkpoint
        result = Orchestrator(registry, quiet=True, progress=False).run(
            WARM_START_STRATEGY,
            config={
                "runs_root": str(tmp_path / "second" / "runs"),
                WARM_START_STRATEGY: warm_start_section(
                    self.strategy_name, checkpoint, self.warm_start_overrides
                ),
                self.strategy_name: self.short_run_config,
                **self.short_run_extra_config,
            },
            run_dir=tmp_path / "second" / "run",
        )
        stage = tmp_path / "second" / "run" / "stages" / WARM_START_STAGE
        stage_result = json.loads((stage / "result.json").read_text(encoding="utf-8"))
        assert stage_result["strategy"] == self.strategy_name
        assert result.checkpoint is not None, "the warm-started run named no checkpoint"
        assert (tmp_path / "second" / "run" / result.checkpoint).exists()


__all__ = [
    "CLOCK_FIELDS",
    "WARM_START_STAGE",
    "WARM_START_STRATEGY",
    "StrategyContract",
    "WarmStartConfig",
    "WarmStartPlugin",
    "comparable",
    "distribution_of",
    "register_plugins",
    "run_warm_start",
    "warm_start_section",
]
