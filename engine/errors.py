"""Specific exceptions raised by the engine; front ends turn them into messages."""


class SgError(Exception):
    """Base class for errors a user should see as one clear line."""


class ConfigError(SgError):
    """A setting or CLI argument is invalid."""


class BadQuery(SgError):
    """A query or its parameters are out of bounds (too long, absurd limit, path outside workspace)."""


class ModelError(SgError):
    """A model could not be loaded or is refused (remote code not allowed, pickled weights, missing files)."""


class StoreError(SgError):
    """The index store is unusable (wrong schema, locked, damaged beyond repair)."""


class SpecError(SgError):
    """An eval spec file does not follow the eval-spec format."""
