"""Deploy the questionnaire to LimeSurvey and add the participants, idempotently.

Steps (each skipped when already done, so a second run changes nothing):

1. find the survey: the id given (``--survey-id``), else the one existing survey with the
   ``.lss`` title, else ``import_survey`` of the ``.lss``.  LimeSurvey keeps a requested id only when
   it is free and says nothing otherwise, so the id it gave is reported (and can be written into the
   study file).  A survey found on the server must have the questionnaire's structure (the same
   columns and question types); if it differs, deploy refuses and says what differs, or imports a new
   survey when asked to (``new_survey``); compared are the columns, the question types and the
   answer codes;
2. ``activate_tokens`` (participants table with ``attribute_1``) only when the survey has no
   participants table (a second call fails on the server), and ``activate_survey`` only when it is
   not active;
3. every participant (paged by tid, :func:`survey.fetch.list_all_participants`) and
   ``add_participants`` (``create_tokens``) for the invitations whose pseudonymous key is not there yet.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import DataValidationError, LimeSurveyFetchError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DeployResult", "StructureDiff", "compare_structure", "deploy", "lss_answer_codes", "read_invitations"]


@dataclass(frozen=True)
class DeployResult:
    """What a deploy did.

    Attributes
    ----------
    survey_id
        The survey on the server (the one to put in the study file).
    requested_id
        The id asked for (``--survey-id``, or for an import the ``.lss``'s own id); differs from
        ``survey_id`` when LimeSurvey gave the import another id because the requested one was taken.
    imported, tokens_activated, activated
        Whether this run imported the survey, created its participants table, activated it.
    participants_before, participants_added, rejected
        The participants already there, those added now, and the invitations the server refused.
    """

    survey_id: int
    imported: bool
    activated: bool
    participants_before: int
    participants_added: int
    rejected: tuple[str, ...]
    tokens_activated: bool = False
    requested_id: int | None = None

    @property
    def id_changed(self) -> bool:
        """LimeSurvey gave another id than the one requested."""
        return self.requested_id is not None and self.requested_id != self.survey_id

    def summary(self) -> str:
        """A short plain-text account."""
        lines = [
            f"Survey {self.survey_id}: {'imported' if self.imported else 'already on the server'}, "
            f"{'activated now' if self.activated else 'active'}, "
            f"participants table {'created now' if self.tokens_activated else 'present'}",
            f"  participants before {self.participants_before:,}, added {self.participants_added:,}, rejected {len(self.rejected):,}",
        ]
        if self.id_changed:
            lines.append(f"  LimeSurvey gave the survey the id {self.survey_id}: the requested id {self.requested_id} was taken")
        lines.append(f"  study file: [survey] survey_id = {self.survey_id}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The counts as a one-row frame."""
        import pandas as pd

        return pd.DataFrame([{"survey_id": self.survey_id, "requested_id": self.requested_id, "imported": self.imported,
                              "tokens_activated": self.tokens_activated, "activated": self.activated,
                              "participants_before": self.participants_before, "participants_added": self.participants_added,
                              "rejected": len(self.rejected)}])


@dataclass(frozen=True)
class StructureDiff:
    """How a survey on the server differs from the questionnaire (empty when they agree)."""

    only_in_questionnaire: tuple[str, ...] = ()
    only_on_server: tuple[str, ...] = ()
    type_changed: tuple[str, ...] = ()
    order_changed: bool = False
    answers_changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.only_in_questionnaire or self.only_on_server or self.type_changed or self.order_changed or self.answers_changed)

    def summary(self) -> str:
        """The differences, one kind per line."""
        parts = []
        if self.only_in_questionnaire:
            parts.append("columns only in the questionnaire: " + ", ".join(self.only_in_questionnaire))
        if self.only_on_server:
            parts.append("columns only on the server: " + ", ".join(self.only_on_server))
        if self.type_changed:
            parts.append("question type changed: " + ", ".join(self.type_changed))
        if self.order_changed:
            parts.append("the same columns in another order")
        if self.answers_changed:
            parts.append("answer codes changed: " + ", ".join(self.answers_changed))
        return "; ".join(parts) or "no differences"

    def to_frame(self) -> pd.DataFrame:
        """One row per difference (``kind``, ``item``)."""
        import pandas as pd

        rows = [(k, x) for k, xs in (("only_in_questionnaire", self.only_in_questionnaire), ("only_on_server", self.only_on_server),
                                     ("type_changed", self.type_changed), ("answers_changed", self.answers_changed)) for x in xs]
        if self.order_changed:
            rows.append(("order_changed", ""))
        return pd.DataFrame(rows, columns=["kind", "item"])


def _lss_structure(lss: bytes) -> tuple[list[str], dict[str, str]]:
    """Code headings in survey order and the question type of each question code, from an ``.lss``."""
    from survey.lss import fieldmap_from_lss

    root = ET.fromstring(lss)
    types = {r.findtext("title") or "": r.findtext("type") or "" for r in root.findall("questions/rows/row")}
    return list(fieldmap_from_lss(lss).values()), types


def lss_answer_codes(lss: bytes) -> dict[str, list[str]]:
    """Question code -> its answer codes (in order), for the questions of an ``.lss`` that have answer options."""
    root = ET.fromstring(lss)
    title = {r.findtext("qid") or "": r.findtext("title") or "" for r in root.findall("questions/rows/row")}
    out: dict[str, list[tuple[int, str]]] = {}
    for a in root.findall("answers/rows/row"):
        q = title.get(a.findtext("qid") or "")
        if q:
            out.setdefault(q, []).append((int(a.findtext("sortorder") or 0), a.findtext("code") or ""))
    return {q: [c for _, c in sorted(v)] for q, v in out.items()}


def _server_structure(fieldmap: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    from survey.lsformat import code_heading_map

    cols = [h for k, h in code_heading_map(fieldmap).items() if isinstance(fieldmap[k], dict) and fieldmap[k].get("title")]
    types = {str(v["title"]): str(v.get("type", "")) for v in fieldmap.values() if isinstance(v, dict) and v.get("title")}
    return cols, types


def compare_structure(lss: bytes, fieldmap: dict[str, Any], answers: dict[str, list[str]] | None = None) -> StructureDiff:
    """Compare the questionnaire's ``.lss`` with a survey on the server.

    Parameters
    ----------
    lss
        The questionnaire.
    fieldmap
        The survey's ``get_fieldmap`` (columns and question types).
    answers
        The survey's answer codes per question code (``get_question_properties`` answeroptions);
        compared when given.
    """
    want, want_t = _lss_structure(lss)
    got, got_t = _server_structure(fieldmap)
    changed: list[str] = []
    if answers is not None:
        for q, codes in lss_answer_codes(lss).items():
            if q in answers and answers[q] != codes:
                only_q = [c for c in codes if c not in answers[q]]
                only_s = [c for c in answers[q] if c not in codes]
                what = []
                if only_q:
                    what.append(f"{', '.join(only_q)} only in the questionnaire")
                if only_s:
                    what.append(f"{', '.join(only_s)} only on the server")
                changed.append(f"{q} ({'; '.join(what) or 'another order'})")
    return StructureDiff(
        answers_changed=tuple(changed),
        only_in_questionnaire=tuple(c for c in want if c not in got),
        only_on_server=tuple(c for c in got if c not in want),
        type_changed=tuple(f"{q} ({want_t[q]} in the questionnaire, {got_t[q]} on the server)"
                           for q in want_t if q in got_t and want_t[q] != got_t[q]),
        order_changed=set(want) == set(got) and want != got,
    )


def _key_shape(key: str) -> str:
    """A person key's format without its value: characters and length ("lower-case hex, 32 characters")."""
    kind = ("lower-case hex" if re.fullmatch(r"[0-9a-f]+", key) else "upper-case hex" if re.fullmatch(r"[0-9A-F]+", key)
            else "digits" if key.isdigit() else "letters and digits" if re.fullmatch(r"[A-Za-z0-9]+", key) else "other characters")
    return f"{kind}, {len(key)} characters"


def read_invitations(path: str | Path, *, pseudo_key: bytes | None = None) -> list[dict[str, str]]:
    """Rows of the invitations CSV (columns ``attribute_1``, ``email``, optional ``language``, names).

    ``attribute_1`` is the person key, in one consistent format (the format of the extracts' keys).
    Raw INSZ numbers in it are pseudonymised with ``pseudo_key`` (the study's key, so the invitations
    link to the extracts) in memory, before anything is sent; without a key they are refused.  Every
    other column is scanned too: an INSZ-like value there is refused.  No error shows an INSZ.
    """
    import numpy as np
    import pandas as pd

    from survey.insz import looks_like_insz, pseudonymise

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
    for col in rows[0]:
        values = pd.Series([str(r.get(col) or "").strip() for r in rows], dtype=object)
        hit = looks_like_insz(values).to_numpy()
        if not hit.any():
            continue
        first = int(np.flatnonzero(hit)[0]) + 1
        if col != "attribute_1":
            raise DataValidationError("A column other than the key holds INSZ-like values", file=path, row=first, column=col,
                                      expected="INSZ numbers only in attribute_1 (and pseudonymised)", found=f"{int(hit.sum())} value(s); not shown",
                                      hint="remove the column from the invitation list")
        if pseudo_key is None:
            raise DataValidationError("Raw INSZ numbers in the invitations", file=path, row=first, column=col,
                                      expected="pseudonymous person keys (or pseudonymise = true with the study's key)",
                                      found=f"{int(hit.sum())} INSZ number(s); not shown",
                                      hint="pass --study with [admin] pseudonymise = true (or --pseudonymise) and set POPEVAL_PSEUDO_KEY, "
                                      "or run `popeval pseudonymise` on the list first")
        hashed = pseudonymise(values[hit], pseudo_key).to_numpy()
        for i, h in zip(np.flatnonzero(hit).tolist(), hashed, strict=True):
            rows[i]["attribute_1"] = str(h)
    seen: set[str] = set()
    shapes: dict[str, tuple[int, int]] = {}
    for i, r in enumerate(rows, start=1):
        key = (r.get("attribute_1") or "").strip()
        if not key:
            raise DataValidationError("Missing person key in the invitations", file=path, row=i, column="attribute_1",
                                      expected="a person key in every row", found="an empty value", hint="every invitation needs the person's key")
        r["attribute_1"] = key
        n, first = shapes.get(_key_shape(key), (0, i))
        shapes[_key_shape(key)] = (n + 1, first)
        if key in seen:
            raise DataValidationError("Duplicate pseudonymous key in the invitations", file=path, row=i, column="attribute_1", found=key,
                                      hint="invite each person once")
        seen.add(key)
    if len(shapes) > 1:
        order = sorted(shapes.items(), key=lambda kv: -kv[1][0])
        raise DataValidationError("Person keys of more than one format in the invitations", file=path, row=order[1][1][1], column="attribute_1",
                                  expected="one consistent key format (the format of the extracts' person keys)",
                                  found="; ".join(f"{s}: {n} rows" for s, (n, _) in order[:5]),
                                  hint="keys in different formats cannot be linked; ask the data owner for one format")
    return rows


def _server_answers(client: Any, sid: int, lss: bytes, kw: dict[str, Any]) -> dict[str, list[str]]:
    """Answer codes on the server of the questions that have answer options in the ``.lss``."""
    from survey.fetch import RpcStatus, rpc_call

    wanted = set(lss_answer_codes(lss))
    qs = rpc_call("list_questions", lambda: client.list_questions(sid), allow=("No questions found",), **kw)
    out: dict[str, list[str]] = {}
    for q in qs if isinstance(qs, list) else []:
        if q.get("parent_qid") in (0, "0") and q.get("title") in wanted:
            props = rpc_call("get_question_properties", partial(client.get_question_properties, int(q["qid"]), settings=["answeroptions"]), **kw)
            opts = props.get("answeroptions") if isinstance(props, dict) and not isinstance(props, RpcStatus) else None
            if isinstance(opts, dict):
                out[str(q["title"])] = [k for k, _ in sorted(opts.items(), key=lambda kv: (int(kv[1].get("order", 0)), kv[0]))]
    return out


def deploy(
    lss: bytes,
    invitations: list[dict[str, str]],
    *,
    url: str,
    user: str,
    password: str,
    survey_id: int | None = None,
    title: str | None = None,
    new_survey: bool = False,
    batch: int = 500,
    page_size: int = 1000,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> DeployResult:
    """Import (if needed) and activate the survey, then add the missing participants.

    Parameters
    ----------
    lss
        The questionnaire as ``.lss``.
    invitations
        Rows of :func:`read_invitations`.
    url, user, password
        The RemoteControl endpoint and the LimeSurvey user.
    survey_id
        Use this survey; if it does not exist, import the questionnaire asking for this id.
    title
        Find the survey by this title (default: the ``.lss`` title) when no id is given.
    new_survey
        When the survey found differs from the questionnaire, import a new survey instead of refusing.
    batch, page_size
        Participants per ``add_participants`` and ``list_participants`` call.

    Raises
    ------
    LimeSurveyFetchError
        The server refused a step (its status is in the message), or the survey found differs from
        the questionnaire (what differs is in the message).
    """
    from survey.fetch import list_all_participants, open_client, rpc_call

    try:
        root = ET.fromstring(lss)
        doc_title = root.findtext("surveys_languagesettings/rows/row/surveyls_title") or ""
        doc_sid = int(root.findtext("surveys/rows/row/sid") or 0) or None
    except ET.ParseError as exc:
        raise DataValidationError("The .lss is not valid XML", found=str(exc)) from exc
    kw: dict[str, Any] = {"retries": retries, "backoff": backoff}
    client = open_client(url, user, password, timeout=timeout, retries=retries, backoff=backoff)
    try:
        target = _target_survey(client, lss, survey_id, title or doc_title, doc_sid, new_survey, kw)
        sid = target.sid
        activated = tokens_activated = False
        props = rpc_call("get_survey_properties", lambda: client.get_survey_properties(sid, ["active"]), **kw)
        existing_rows = list_all_participants(client, sid, page_size=page_size, **kw)
        if existing_rows is None:
            rpc_call("activate_tokens", lambda: client.activate_tokens(sid, [1]), **kw)
            tokens_activated = True
            existing_rows = []
        if isinstance(props, dict) and props.get("active") != "Y":
            rpc_call("activate_survey", lambda: client.activate_survey(sid), allow=("Error: Survey already active",), **kw)
            activated = True
        existing = {str(p.get("attribute_1") or "") for p in existing_rows}
        todo = [r for r in invitations if r["attribute_1"] not in existing]
        added, rejected = _add_participants(client, sid, todo, batch, kw)
        return DeployResult(sid, target.imported, activated, len(existing_rows), added, tuple(rejected),
                            tokens_activated=tokens_activated, requested_id=target.requested)
    finally:
        # releasing the key must not hide the real error
        with contextlib.suppress(Exception):
            client.close()


@dataclass(frozen=True)
class _Target:
    """The survey a deploy goes to."""

    sid: int
    #: the questionnaire was imported as this survey
    imported: bool
    #: the id asked for (of LimeSurvey at an import: the desired id, else the ``.lss``'s)
    requested: int | None


def _import_survey(client: Any, lss: bytes, desired: int | None, doc_sid: int | None, kw: dict[str, Any]) -> _Target:
    """Import the questionnaire as a new survey."""
    from survey.fetch import rpc_call

    # LimeSurvey keeps the desired id (else the .lss's) only when it is free, and says nothing otherwise
    sid = int(rpc_call("import_survey", lambda: client.import_survey(io.BytesIO(lss), "lss", None, desired), **kw))  # type: ignore[arg-type]
    return _Target(sid=sid, imported=True, requested=desired or doc_sid)


def _target_survey(client: Any, lss: bytes, survey_id: int | None, title: str, doc_sid: int | None, new_survey: bool,
                   kw: dict[str, Any]) -> _Target:
    """The survey with ``survey_id`` (imported with that id if absent), else the one titled ``title`` (imported if none).

    A survey found must have the questionnaire's structure; with ``new_survey`` a different one is
    left alone and the questionnaire imported as a new survey.
    """
    from survey.fetch import RpcStatus, rpc_call

    if survey_id is not None:
        props = rpc_call("get_survey_properties", lambda: client.get_survey_properties(survey_id, ["active"]), allow=("Error: Invalid survey ID",), **kw)
        if isinstance(props, RpcStatus):
            return _import_survey(client, lss, survey_id, doc_sid, kw)
        sid = survey_id
    else:
        surveys = rpc_call("list_surveys", client.list_surveys, allow=("No surveys found",), **kw)
        same = [x for x in surveys if isinstance(x, dict) and x.get("surveyls_title") == title] if isinstance(surveys, list) else []
        if len(same) > 1:
            raise LimeSurveyFetchError("Several surveys have the questionnaire's title", found=", ".join(str(x["sid"]) for x in same),
                                       hint="pass --survey-id to choose one (and put it in the study file)")
        if not same:
            return _import_survey(client, lss, None, doc_sid, kw)
        sid = int(same[0]["sid"])
    fieldmap = rpc_call("get_fieldmap", lambda: client.get_fieldmap(sid), **kw)
    diff = compare_structure(lss, fieldmap if isinstance(fieldmap, dict) else {}, _server_answers(client, sid, lss, kw))
    if diff and not new_survey:
        raise LimeSurveyFetchError(
            f"Survey {sid} on the server differs from the questionnaire",
            param="--survey-id" if survey_id is not None else "survey title",
            expected="the questionnaire's columns, question types and answer codes",
            found=diff.summary(),
            hint="deploy it as a new survey with --new-survey (then put the new id in the study file), "
            "or pass --survey-id of the survey that matches; responses already collected stay on the old survey",
        )
    if diff:
        return _import_survey(client, lss, None, doc_sid, kw)
    return _Target(sid=sid, imported=False, requested=survey_id)


def _add_participants(client: Any, sid: int, todo: list[dict[str, str]], batch: int, kw: dict[str, Any]) -> tuple[int, list[str]]:
    """Add ``todo`` in batches: how many were added, and the rejected ones with the server's reasons."""
    from survey.fetch import rpc_call

    rejected: list[str] = []
    added = 0
    for i in range(0, len(todo), batch):
        chunk = [
            {"firstname": r.get("firstname", ""), "lastname": r.get("lastname", ""), "email": r["email"],
             "language": r.get("language") or "nl", "attribute_1": r["attribute_1"]}
            for r in todo[i : i + batch]
        ]
        result = rpc_call("add_participants", partial(client.add_participants, sid, participant_data=chunk, create_tokens=True), **kw)
        for rec in result if isinstance(result, list) else []:
            if "errors" in rec:
                rejected.append(f"{rec.get('attribute_1', '?')}: {json.dumps(rec['errors'], ensure_ascii=False)}")
            else:
                added += 1
    return added, rejected
