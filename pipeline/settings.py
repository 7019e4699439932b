"""One frozen settings object, read from the environment and an optional churnwatch.toml.

Precedence (highest first): explicit overrides (CLI options) > CHURNWATCH_* environment
variables > churnwatch.toml (in the working directory, or the file named by CHURNWATCH_CONFIG)
> the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from pipeline.errors import ChurnwatchError

# The repository root when running from a checkout (models/, rules/ and samples/ live there).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    # SQLAlchemy URL of the store: SQLite by default, postgresql+psycopg://... for a team.
    db_url: str = "sqlite:///churnwatch.db"
    # Where model weights are installed and fitted risk models are kept (manifest.toml inside).
    models_dir: Path = PROJECT_ROOT / "models"
    # The rule pack: cues/*.yaml, risk.yaml, reminders.yaml.
    rules_dir: Path = PROJECT_ROOT / "rules"
    # ASR engine: "faster-whisper" (fast, default) or "openai-whisper" (the reference).
    engine: str = "faster-whisper"
    # Whisper model for English calls, and the multilingual one for every other language.
    asr_model: str = "tiny.en"
    multilingual_model: str = "base"
    # Which channel of a dual-channel recording carries the rep: "left" or "right".
    rep_channel: str = "left"
    # sentence-transformers model for embedding rules (a name from models/manifest.toml or a path).
    embedding_model: str = "all-MiniLM-L6-v2"
    # Threads for the ASR engine and torch.
    threads: int = 2
    # `churnwatch serve`: where uploaded recordings and the session secret are kept, and the
    # largest upload accepted, in MB.
    data_dir: Path = Path("churnwatch-data")
    max_upload_mb: int = 200

    def with_overrides(self, **overrides) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


ENGINES = ("faster-whisper", "openai-whisper")
CHANNELS = ("left", "right")


def _coerce(name: str, value, source: str):
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind == "Path":
        return Path(value).expanduser()
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ChurnwatchError(f"{source}: {name} must be a whole number, got {value!r}.")
    return str(value)


def load_settings(config_file: Path | None = None, **overrides) -> Settings:
    """Read settings from churnwatch.toml and CHURNWATCH_* variables, then apply overrides."""
    values: dict = {}
    names = {f.name for f in fields(Settings)}
    path = config_file or Path(os.environ.get("CHURNWATCH_CONFIG", "churnwatch.toml"))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ChurnwatchError(f"{path}: not valid TOML ({e}). Fix the file or remove it.")
        for key, value in data.items():
            if key not in names:
                raise ChurnwatchError(
                    f"{path}: unknown setting {key!r}. Valid settings: {', '.join(sorted(names))}."
                )
            values[key] = _coerce(key, value, str(path))
    env_names = {"db_url": "CHURNWATCH_DB"}
    for name in names:
        env = env_names.get(name, f"CHURNWATCH_{name.upper()}")
        if os.environ.get(env):
            values[name] = _coerce(name, os.environ[env], env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    if settings.engine not in ENGINES:
        raise ChurnwatchError(f"Unknown engine {settings.engine!r}. Choose one of: {', '.join(ENGINES)}.")
    if settings.rep_channel not in CHANNELS:
        raise ChurnwatchError(
            f"Unknown rep channel {settings.rep_channel!r}. Choose one of: {', '.join(CHANNELS)}."
        )
    return settings
