"""One small exception hierarchy; every message names the file, the problem and the fix."""

from __future__ import annotations


class ClinlabelError(Exception):
    """Base of every error this package raises on purpose (bad input, refused action)."""


class InputError(ClinlabelError):
    """A file or folder cannot be read as an image (corrupt, empty, unsupported, ...)."""


class GeometryError(InputError):
    """An image's geometry is unusable (uneven spacing, gaps, gantry tilt, mixed orientation)."""


class SchemaError(ClinlabelError):
    """A label schema file has errors; the message names the line."""


class LogError(ClinlabelError):
    """The sidecar log cannot be opened or written; the action that needed it did not happen."""


class LogIntegrityError(LogError):
    """A log fails verification; ``seq`` is the first bad record (or None for the file itself)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class ModelError(ClinlabelError):
    """A model file or model card is missing, malformed or does not fit the image."""


class ExportError(ClinlabelError):
    """An export cannot be written as asked."""


class PendingProposalsError(ExportError):
    """Export refused while model proposals are undecided."""

    def __init__(self, message: str, pending: int) -> None:
        super().__init__(message)
        self.pending = pending


class PacsError(ClinlabelError):
    """A DICOMweb server cannot be reached, refuses the credentials, or lacks what was asked."""


class PermissionRefused(ClinlabelError):
    """The acting human's role does not allow this action (e.g. adjudicating one's own read)."""


class ClinlabelWarning(UserWarning):
    """Something the user should know that did not stop the action (turned into errors in tests)."""
