"""Shared run machinery: config, run directory, logging, checkpoints, the training loop.

Agents implement :class:`~metarl.contract.Trainable` (the trainer's part of the agent
contract, :mod:`metarl.contract`); the CLI resolves a
config, creates or reopens a run directory and hands both to
:class:`~metarl.runs.trainer.Trainer`. See each module's docstring for why
it works the way it does.
"""

from metarl.runs.checkpoint import (
    Checkpoint,
    CheckpointError,
    capture_rng_state,
    find_latest,
    list_checkpoints,
    load_agent_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from metarl.runs.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_yaml,
    param,
    resolve_config,
    to_dict,
    validate,
)
from metarl.runs.interrupt import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    GracefulInterrupt,
)
from metarl.runs.logger import ProgressBar, RunLogger, adapt_key, namespaced
from metarl.runs.rundir import (
    RunDir,
    RunDirError,
    RunMetadata,
    create_run_dir,
    open_run_dir,
    prepare_run,
    read_run_config,
    resume_command,
)
from metarl.runs.trainer import ENV_STEPS_KEY, Agent, Trainer, TrainerConfig, TrainResult

__all__ = [
    "ENV_STEPS_KEY",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Agent",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "GracefulInterrupt",
    "ProgressBar",
    "RunDir",
    "RunDirError",
    "RunLogger",
    "RunMetadata",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "adapt_key",
    "apply_overrides",
    "capture_rng_state",
    "create_run_dir",
    "dump_yaml",
    "find_latest",
    "from_dict",
    "list_checkpoints",
    "load_agent_state",
    "load_checkpoint",
    "load_yaml",
    "namespaced",
    "open_run_dir",
    "param",
    "prepare_run",
    "read_run_config",
    "resolve_config",
    "restore_rng_state",
    "resume_command",
    "save_checkpoint",
    "to_dict",
    "validate",
]
