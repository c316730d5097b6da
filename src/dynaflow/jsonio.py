"""JSON for every file DynaFlow writes: strict JSON that any parser reads.

NaN and ±inf (a metric a method cannot have, a diverged value) become ``null``; NumPy scalars and
arrays become Python numbers and lists; paths and other objects become strings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(v: Any) -> Any:
    """A JSON-ready copy of ``v`` (see the module docstring)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool | int | str) or v is None:
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Path):
        return str(v)
    return str(v)


def dumps(v: Any, indent: int | None = 2) -> str:
    """``json.dumps`` of :func:`jsonable` (``v``), refusing any non-standard token."""
    return json.dumps(jsonable(v), indent=indent, allow_nan=False)
