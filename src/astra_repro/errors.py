"""One exception type for mistakes a user can fix; the entry points print it as one line."""


class ConfigError(ValueError):
    """Bad input (unknown name, missing file, impossible option). The message names the fix."""


class FolderInUse(ConfigError):
    """Another process holds the folder's lock (runs.FolderLock): its own work, not this one's failure."""
