"""What the readers of a run folder rely on: the shape of a metrics record, and JSON files read
with one line naming the file and what is wrong with it."""

from __future__ import annotations

import json
from pathlib import Path


class RunFolderError(ValueError):
    """A run folder (or one of its files) that cannot be used as asked."""


# keys whose values are text; every other value of a record is a number, null, a list of numbers
# or a table of numbers (a finding's evidence)
STRING_KEYS = frozenset({"kind", "detector", "severity", "title", "meaning", "fix", "reason", "feature_space"})


def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)))


def is_record(record) -> bool:
    """Whether a parsed line of metrics.jsonl has the shape the readers rely on."""
    if not isinstance(record, dict) or type(record.get("step")) is not int or record["step"] < 0:
        return False
    for key, value in record.items():
        if key in STRING_KEYS:
            if not isinstance(value, str):
                return False
        elif isinstance(value, list):
            if not all(_is_number(v) for v in value):
                return False
        elif isinstance(value, dict):
            if not all(isinstance(k, str) and (_is_number(v) or isinstance(v, str)) for k, v in value.items()):
                return False
        elif not _is_number(value):
            return False
    return True


def read_bytes(file: Path, what: str) -> bytes:
    """A run file's bytes, or one line naming the file when it cannot be read."""
    try:
        return file.read_bytes()
    except PermissionError:
        raise RunFolderError(f"cannot read {file} ({what}): permission denied; make it readable "
                             f"(chmod u+r) or run as its owner") from None
    except IsADirectoryError:
        raise RunFolderError(f"{file} ({what}) is a folder, not a file") from None


def read_json(file: Path, what: str):
    """A JSON file's content, or one line naming the file and what is wrong with it."""
    data = read_bytes(Path(file), what)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFolderError(f"{file} ({what}) is damaged: it is not UTF-8 text") from None
    except (ValueError, RecursionError) as error:
        raise RunFolderError(f"{file} ({what}) is damaged: not valid JSON ({str(error)[:120]})") from None
