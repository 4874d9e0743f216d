"""Domain exceptions, raised by the core and translated once at the CLI and HTTP edges."""


class KbError(Exception):
    """Base class: a problem the user can act on, shown without a traceback."""

    code = "error"
    status = 500


class BadRequest(KbError):
    """A parameter or query the caller can correct."""

    code = "bad_request"
    status = 400


class EmptyQuery(BadRequest):
    """A query given, but with nothing to search in it (spaces, control characters): well formed,
    yet nothing can come of it."""

    code = "empty_query"
    status = 422


class InvalidField(BadRequest):
    """A value that cannot be saved as given, and which field it is (so a form can point at it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class NotFound(KbError):
    """A document or other object that does not exist (or is not visible to the caller)."""

    code = "not_found"
    status = 404


class LoadError(KbError):
    """A file that could not be turned into text: corrupt, encrypted, empty, unsupported..."""

    code = "load_error"
    status = 422


class MissingDependency(LoadError):
    """A file kb should read, but cannot here: a library it needs is not installed. kb's own fault,
    never the file's, so it says so and how to mend it."""

    code = "missing_dependency"
    status = 500

    def __init__(self, what: str):
        super().__init__(f"kb cannot read this file here: a library it needs is missing ({what}); "
                         "install kb's dependencies again (make install)")


class Busy(KbError):
    """Another writer holds the collection."""

    code = "busy"
    status = 503


class ConfigError(KbError):
    """A setting that cannot work (unknown model, bad index kind...)."""

    code = "config_error"
    status = 500


class SignInRequired(KbError):
    """The visitor must sign in first."""

    code = "sign_in_required"
    status = 401


class Forbidden(KbError):
    """Signed in, but the role does not allow this."""

    code = "forbidden"
    status = 403


class TooManyAttempts(KbError):
    """Sign-in is locked for a while after repeated failures."""

    code = "too_many_attempts"
    status = 429


class DatabaseUnavailable(KbError):
    """The database server cannot be reached (down, restarting, or a wrong URL)."""

    code = "database_unavailable"
    status = 503
