"""The one error type the twin raises; the CLI turns it into one line and a non-zero exit."""


class TwinError(Exception):
    """Something the user can act on: `cause` says what is wrong, `fix` what to do."""

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause} — {self.fix}" if self.fix else self.cause
