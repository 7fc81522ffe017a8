"""The exceptions invertkit raises for bad input.

Every error a user can cause (a wrong file, an unknown latent space, a broken image) is an
:class:`InvertkitError`. Its message is one line that names the file or value and says what to do;
the CLI prints exactly that line and exits with status 2.
"""

from __future__ import annotations


class InvertkitError(Exception):
    """Base class of all user-facing invertkit errors."""


class CheckpointError(InvertkitError, ValueError):
    """A checkpoint file cannot be read safely or does not describe a supported generator."""


class ImageError(InvertkitError, ValueError):
    """An image file is missing, unreadable or has an unusable shape."""


class LatentSpaceError(InvertkitError, ValueError):
    """A latent space name is unknown for this generator, or a latent has the wrong shape."""


class ConfigError(InvertkitError, ValueError):
    """An option or configuration value is invalid."""


class CapabilityError(ConfigError, LatentSpaceError):
    """A generator lacks a capability that a method or command needs (``generators.capabilities``).

    A ConfigError (wrong choice of generator for what was asked) and a LatentSpaceError (the space
    or operation does not exist for it), so code that caught either before keeps catching it."""
