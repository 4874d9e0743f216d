"""Domain exceptions, raised by the core and translated once at the CLI and HTTP edges."""


class KbError(Exception):
    """Base class: a problem the user can act on, shown without a traceback."""

    code = "error"
    status = 500


class BadRequest(KbError):
    """A parameter or query the caller can correct."""

    code = "bad_request"
    status = 400


class NotFound(KbError):
    """A document or other object that does not exist (or is not visible to the caller)."""

    code = "not_found"
    status = 404


class LoadError(KbError):
    """A file that could not be turned into text: corrupt, encrypted, empty, unsupported..."""

    code = "load_error"
    status = 422


class Busy(KbError):
    """Another writer holds the collection."""

    code = "busy"
    status = 503


class ConfigError(KbError):
    """A setting that cannot work (unknown model, bad index kind...)."""

    code = "config_error"
    status = 500
