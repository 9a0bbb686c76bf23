"""The runtime that runs the contract: nothing here is needed to write a strategy.

- `registry`: discovers plugins from entry points, loads and checks one strategy by name.
- `config`: the run config (settings plus one validated section per strategy).
- `orchestrator`: the façade `townlet train` calls: resolve, configure, run, resume.
- `execution`: one run in its run directory (prepare, run, validate and commit the result).
- `composition`: `StageRunner`, a composed strategy's stages as child runs.
- `run_dir`, `state`, `metrics`, `progress`, `seeding`, `torch_guard`: the services they use.
"""
