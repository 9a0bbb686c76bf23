"""The core never imports torch: checked in fresh interpreters of an environment that HAS torch.

Import state is process-wide and the rest of the suite may import torch, so only a new
interpreter can observe what the core itself pulls in.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

PROBE = """
import sys
from townlet_core.cli import main
{body}
heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not heavy, f"torch was imported: {{heavy[:5]}}"
print("ok")
"""


def _fresh(body: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_torch_is_installed_here_so_the_check_means_something():
    assert importlib.util.find_spec("torch") is not None, (
        "torch isolation must be tested where torch is installed; install the pinned CPU build "
        "(pip install -c constraints/ci.txt torch)"
    )


@pytest.mark.parametrize(
    "body",
    [
        "import townlet_core\nfrom townlet_core import *  # noqa\n"
        "from townlet_core import Orchestrator, TrainingResultDTO, StrategyRegistry, TrainingContext",
        "assert main(['--help']) == 0",
        "assert main(['--version']) == 0",
        "assert main(['strategies', 'list']) == 0",
        "assert main(['strategies', 'list', '--json']) == 0",
        "assert main(['strategies', 'list', '--check']) == 0",
        "assert main(['train', '--help']) == 0",
        "assert main(['config', 'migrate', '--help']) == 0",
        "import townlet_core.testing",
    ],
    ids=[
        "import",
        "help",
        "version",
        "list",
        "list-json",
        "list-check",
        "train-help",
        "config-migrate-help",
        "testing-kit",
    ],
)
def test_core_and_cli_do_not_import_torch(body, site_env):
    site_env["TOWNLET_LOAD_PLUGINS"] = "good-strategy"
    completed = _fresh(body, site_env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.rstrip().endswith("ok")


@pytest.mark.slow
def test_installed_strategy_plugins_do_not_import_torch_when_listed_or_checked(site_env):
    """Every plugin installed in this environment (first-party and examples) is light."""
    site_env.pop("TOWNLET_LOAD_PLUGINS", None)
    site_env["PYTHONPATH"] = ""  # only really installed distributions
    completed = _fresh("assert main(['strategies', 'list', '--check']) == 0", site_env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
