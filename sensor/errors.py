"""One error hierarchy for the whole project.

Every failure a user can cause (bad file, bad rule, unreachable host, bad setting) is raised
as a subclass of :class:`SekimoriError` with a message that names the file/line/host. Lower
layers convert foreign exceptions at their boundary with ``raise ... from exc``; the CLI
turns a ``SekimoriError`` into one line on stderr and the exit code below, never a traceback.
"""

from __future__ import annotations


class SekimoriError(Exception):
    """Base of every error sekimori reports to a user."""

    exit_code = 1


class ConfigError(SekimoriError):
    """A configuration file, environment variable or --set value is invalid."""

    exit_code = 2


class CaptureError(SekimoriError):
    """A capture file or interface cannot be read (missing, corrupt, no permission)."""

    exit_code = 3


class RuleError(SekimoriError):
    """A rule cannot be parsed or compiled. Carries where it came from when known."""

    exit_code = 4

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        category: str = "invalid",
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.category = category  # short bucket for the skipped-rules summary
        where = f"{file}:{line}: " if file is not None and line is not None else ""
        super().__init__(f"{where}{reason}")


class UnsupportedKeyword(RuleError):
    """The rule uses a keyword sekimori knows but does not implement (yet)."""

    def __init__(self, keyword: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(
            f"keyword '{keyword}' is not yet supported",
            file=file,
            line=line,
            category=f"unsupported keyword: {keyword}",
        )
        self.keyword = keyword


class BusError(SekimoriError):
    """Redis (the alert bus) is unreachable or answered with an error."""

    exit_code = 5


class ResponderError(SekimoriError):
    """A responder (firewall, reset injector, vendor API) failed."""

    exit_code = 6
