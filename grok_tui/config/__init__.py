"""experiments.toml → validated, fully resolved run specs (plain dicts, written as ``spec.json``).

Every error is a :class:`ConfigError` whose message is one line naming the file, the experiment and the
key, what the key allows and the close match for a misspelt key or choice. The file's schema is
:mod:`.schema`, its limits :mod:`.limits`.
"""

from __future__ import annotations

import msgspec as _msgspec

from .errors import ConfigError
from .loader import (
    ADDED_MODEL_KEYS,
    ADDED_SPEC_KEYS,
    Config,
    expand_experiment,
    load_config,
    parse_config,
    read_runs_dir,
    run_label,
    valid_device,
    with_added_keys,
)
from .resolved import TO_TRAIN, check_resolved
from .schema import Analysis as _Analysis

#: Analysis options of a spec that sets none (readers fill older specs' missing keys from it).
ANALYSIS_DEFAULTS: dict = _msgspec.to_builtins(_Analysis())

__all__ = [
    "ADDED_MODEL_KEYS",
    "ADDED_SPEC_KEYS",
    "ANALYSIS_DEFAULTS",
    "TO_TRAIN",
    "check_resolved",
    "Config",
    "ConfigError",
    "expand_experiment",
    "load_config",
    "parse_config",
    "read_runs_dir",
    "run_label",
    "valid_device",
    "with_added_keys",
]
