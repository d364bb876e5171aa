"""Domain exceptions. Services raise these; interfaces translate them into responses."""


class SDEError(Exception):
    """Base of every domain error."""


class PermissionDenied(SDEError):
    """The actor may see the object but may not do this to it (HTTP 403)."""


class NotFound(SDEError):
    """The object does not exist, or the actor may not see it (HTTP 404)."""


class InvalidTransition(SDEError):
    """The object is not in a state that allows this action (HTTP 409)."""


class ValidationError(SDEError):
    """The input is invalid; ``errors`` maps field names to messages (HTTP 400)."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class GovernedWriteRefused(SDEError):
    """A governed model was written outside its service."""


class AuditError(SDEError):
    """The audit log could not be written; the change it records must not commit."""
