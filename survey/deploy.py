"""Deploy the questionnaire to LimeSurvey and add the participants, idempotently.

Steps (each skipped when already done, so a second run changes nothing):

1. find the survey: the id given (``--survey-id``), else the one existing survey with the
   ``.lss`` title, else ``import_survey`` of the ``.lss``;
2. ``activate_tokens`` (participants table with ``attribute_1``) and ``activate_survey``;
3. ``list_participants`` (all pages, ``attribute_1``) and ``add_participants`` (``create_tokens``)
   for the invitations whose pseudonymous key is not there yet.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import DataValidationError, LimeSurveyFetchError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DeployResult", "deploy", "read_invitations"]

_NO_PARTICIPANTS = "No survey participants found."


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did."""

    survey_id: int
    imported: bool
    activated: bool
    participants_before: int
    participants_added: int
    rejected: tuple[str, ...]

    def summary(self) -> str:
        """A short plain-text account."""
        return (
            f"Survey {self.survey_id}: {'imported' if self.imported else 'already on the server'}, "
            f"{'activated now' if self.activated else 'active'}\n"
            f"  participants before {self.participants_before:,}, added {self.participants_added:,}, rejected {len(self.rejected):,}"
        )

    def to_frame(self) -> pd.DataFrame:
        """The counts as a one-row frame."""
        import pandas as pd

        return pd.DataFrame([{"survey_id": self.survey_id, "imported": self.imported, "activated": self.activated,
                              "participants_before": self.participants_before, "participants_added": self.participants_added,
                              "rejected": len(self.rejected)}])


def read_invitations(path: str | Path) -> list[dict[str, str]]:
    """Rows of the invitations CSV (columns ``attribute_1``, ``email``, optional ``language``, names)."""
    from survey.datamodel import is_pseudo_key

    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    for col in ("attribute_1", "email"):
        if col not in rows[0]:
            raise DataValidationError("Missing column in the invitations", file=path, row=0, column=col,
                                      expected="columns attribute_1, email (and optionally language, firstname, lastname)",
                                      found=", ".join(rows[0]))
    seen: set[str] = set()
    for i, r in enumerate(rows, start=1):
        key = (r.get("attribute_1") or "").strip()
        if not is_pseudo_key(key):
            raise DataValidationError("Not a pseudonymous key", file=path, row=i, column="attribute_1",
                                      expected="32 lower-case hex digits", found=repr(key[:40]),
                                      hint="the invitations carry the pseudonymous person key, never an INSZ")
        if key in seen:
            raise DataValidationError("Duplicate pseudonymous key in the invitations", file=path, row=i, column="attribute_1", found=key)
        seen.add(key)
    return rows


def _existing_keys(session: Any, sid: int, rpc: Any, page_size: int = 1000) -> set[str]:
    keys: set[str] = set()
    start = 0
    while True:
        page = rpc(
            session, "list_participants", sid, start, page_size, False, ["attribute_1"],
            allow=(_NO_PARTICIPANTS, "Error: No survey participants table"),
        )
        if not isinstance(page, list) or not page:
            return keys
        keys.update(str(p.get("attribute_1") or "") for p in page)
        if len(page) < page_size:
            return keys
        start += page_size


def deploy(
    lss: bytes,
    invitations: list[dict[str, str]],
    *,
    url: str,
    user: str,
    password: str,
    survey_id: int | None = None,
    title: str | None = None,
    batch: int = 500,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> DeployResult:
    """Import (if needed) and activate the survey, then add the missing participants.

    Raises
    ------
    LimeSurveyFetchError
        The server refused a step (its status is in the message).
    """
    import xml.etree.ElementTree as ET

    from survey.fetch import _rpc, open_client
    from survey.lss import fieldmap_from_lss  # noqa: F401 - the .lss is validated by parsing below

    try:
        root = ET.fromstring(lss)
        doc_title = root.findtext("surveys_languagesettings/rows/row/surveyls_title") or ""
    except ET.ParseError as exc:
        raise DataValidationError("The .lss is not valid XML", found=str(exc)) from exc
    title = title or doc_title
    kw: dict[str, Any] = {"retries": retries, "backoff": backoff}
    client = open_client(url, user, password, timeout=timeout, retries=retries, backoff=backoff)
    s = client.session
    try:
        imported = activated = False
        sid = survey_id
        if sid is None:
            surveys = _rpc(s, "list_surveys", allow=("No surveys found",), **kw)
            same = [x for x in surveys if isinstance(x, dict) and x.get("surveyls_title") == title] if isinstance(surveys, list) else []
            if len(same) > 1:
                raise LimeSurveyFetchError("Several surveys have the questionnaire's title", found=", ".join(str(x["sid"]) for x in same),
                                           hint="pass --survey-id to choose one")
            sid = int(same[0]["sid"]) if same else None
        if sid is None:
            sid = int(_rpc(s, "import_survey", base64.b64encode(lss).decode("ascii"), "lss", **kw))
            imported = True
        props = _rpc(s, "get_survey_properties", sid, ["active"], **kw)
        _rpc(s, "activate_tokens", sid, [1], **kw)
        if props.get("active") != "Y":
            _rpc(s, "activate_survey", sid, **kw)
            activated = True
        existing = _existing_keys(s, sid, lambda *a, allow=(): _rpc(*a, allow=allow, **kw))
        todo = [r for r in invitations if r["attribute_1"] not in existing]
        rejected: list[str] = []
        added = 0
        for i in range(0, len(todo), batch):
            chunk = [
                {"firstname": r.get("firstname", ""), "lastname": r.get("lastname", ""), "email": r["email"],
                 "language": r.get("language") or "nl", "attribute_1": r["attribute_1"]}
                for r in todo[i : i + batch]
            ]
            result = _rpc(s, "add_participants", sid, chunk, True, **kw)
            for rec in result:
                if "errors" in rec:
                    rejected.append(f"{rec.get('attribute_1', '?')}: {json.dumps(rec['errors'], ensure_ascii=False)}")
                else:
                    added += 1
        return DeployResult(sid, imported, activated, len(existing), added, tuple(rejected))
    finally:
        # releasing the key must not hide the real error
        with contextlib.suppress(Exception):
            client.close()
