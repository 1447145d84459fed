"""Errors that edgesmith raises for bad input: each names what was wrong and what is accepted."""


class EdgesmithError(Exception):
    """Base class for every error edgesmith raises on purpose."""


class ConfigError(EdgesmithError, ValueError):
    """A configuration value is invalid. The message names the key, the value and what is accepted."""

    def __init__(self, key: str, value, accepted: str, detail: str = ""):
        self.key, self.value, self.accepted, self.detail = key, value, accepted, detail
        msg = f"invalid config value {key}={value!r}: accepted {accepted}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class UnknownOptionError(ConfigError):
    """A key that is no option of the section's options class (raised by ``check_keys``)."""


class PluginError(EdgesmithError, LookupError):
    """A plugin is missing, registered twice, or failed to load."""


class StageError(EdgesmithError, RuntimeError):
    """A pipeline stage failed; the message names the stage."""

    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(f"stage '{stage}' failed: {message}")


class CheckpointError(EdgesmithError, ValueError):
    """A checkpoint does not fit the model: names the missing, extra and mis-shaped tensors."""


class DataError(EdgesmithError, ValueError):
    """An input file (dataset, model directory) is unreadable: names the file, the line where it
    has one, and what is accepted."""
