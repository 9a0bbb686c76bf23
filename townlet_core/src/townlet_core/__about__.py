"""Version and contract constants, kept import-free so the CLI can answer `--version` fast."""

__version__ = "0.1.0"

#: Major version of the strategy plugin contract. A strategy declares the version it was
#: written against (`StrategySpec.api_version`); the registry refuses any other.
STRATEGY_API_VERSION = 1

#: The entry-point group strategies register under. PyPA asks that a group start with a
#: distribution name its consumer owns, and group names cannot hold hyphens.
ENTRY_POINT_GROUP = "townlet_core.strategies"

#: The core's own distribution name, used to check a plugin's `Requires-Dist` against us.
CORE_DISTRIBUTION = "townlet-core"

#: Strategies published from this repository, with the extra that installs each one.
FIRST_PARTY_EXTRAS = {"bc": "bc", "ppo": "ppo", "anneal": "anneal"}
