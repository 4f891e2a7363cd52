"""The training record a pipeline folder carries: how far each stage was trained, and on what data."""

from __future__ import annotations

import json
import os
from pathlib import Path

TRAINING_RECORD = "training.json"


def training_data(folder: str | os.PathLike | None) -> str | None:
    """The kind of data (e.g. "shapes") the record in `folder` names; None without a folder or a record."""
    record = Path(folder) / TRAINING_RECORD if folder is not None else None
    return json.loads(record.read_text()).get("data") if record is not None and record.is_file() else None
