"""The privacy check of the POP part: no POP text, placeholder, e-mail address, INSZ-like number or POP id.

Shared by the tests that look at what the POP part writes (bundle, run log, rendered report).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

__all__ = ["assert_no_personal_text"]


def assert_no_personal_text(blob: str, study: Path) -> None:
    """Fail if ``blob`` holds a line of a POP text of ``study`` or anything personal a POP text may hold."""
    texts = pd.read_parquet(study / "plans" / "pop_texts.parquet")
    fragments = {line.strip() for t in texts["text"] for line in t.splitlines() if len(line.strip()) > 40}
    leaked = [f for f in fragments if f in blob]
    assert not leaked, leaked[:3]
    assert "[INSZ]" not in blob and "[e-mail]" not in blob  # masked text would carry its placeholders
    assert "@voorbeeld.be" not in blob
    assert not re.search(r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}", blob)
    assert not re.search(r"LBT\d{8}", blob)  # no POP (trajectory) id
