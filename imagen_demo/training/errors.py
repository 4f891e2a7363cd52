"""Training's own error, importable without torch so the CLI can catch it and still start fast."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""
