"""A stand-in LimeSurvey 6.14 RemoteControl 2 (JSON-RPC) server for tests.

It listens on loopback over real HTTP and answers as the recorded server does, byte for byte: compact
PHP ``json_encode`` envelopes (``\\/``, ``\\uXXXX``), status-string errors with HTTP 200, the HTTP 500
HTML page for unknown methods and too few parameters, empty-body 200 replies for notifications, GET
and non-JSON content types, and base64 exports written with the streaming envelope
``{"id":N, "result":"...", "error":null}``.

Behind it is a small stateful model of LimeSurvey: surveys imported from ``.lss``, the participants
table, responses (``add_response``/``update_response``), exports by id range, completion status and
token, the summary, sessions and their release.  Faults (dropped connections, stalls, invalid base64,
truncated JSON) can be injected per method with :meth:`StandInServer.inject`.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import socket
import string
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from survey.lsformat import php_json_dumps, write_csv_export

__all__ = ["Fault", "LimeSurveyModel", "StandInServer"]

_ERROR_PAGE = (Path(__file__).parent / "data" / "limesurvey" / "error500.html").read_text(encoding="utf-8")
_CSRF_PAGE = (Path(__file__).parent / "data" / "limesurvey" / "error400.html").read_text(encoding="utf-8")
_LOCKOUT = "You have exceeded the number of maximum login attempts. Please wait 10 minutes before trying again."
_KEY_ALPHABET = string.ascii_letters + string.digits + "_~"
_TOKEN_ALPHABET = string.ascii_letters + string.digits
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FIXED = ("id", "submitdate", "lastpage", "startlanguage", "seed", "token", "startdate", "datestamp")
_FIXED_LONG = {
    "nl": ("Respons-id", "Datum verzonden", "Laatste pagina", "Begin taal", "Plaats", "Toegangscode", "Startdatum", "Datum laatste actie"),
    "en": ("Response ID", "Date submitted", "Last page", "Start language", "Seed", "Access code", "Date started", "Date last action"),
}
_FIXED_ADMIN = ("Response ID", "Date submitted", "Last page", "Start language", "Seed", "Access code", "Date started", "Date last action")
_OTHER = {"nl": "Overige", "en": "Other"}
_YES_NO = {"nl": ("Ja", "Nee"), "en": ("Yes", "No")}

#: get_survey_properties: columns in database order, and which are integers.
_SURVEY_COLUMNS = ["sid", "owner_id", "gsid", "admin", "active", "expires", "startdate", "adminemail", "anonymized", "format", "savetimings", "template", "language", "additional_languages", "datestamp", "usecookie", "allowregister", "allowsave", "autonumber_start", "autoredirect", "allowprev", "printanswers", "ipaddr", "ipanonymize", "refurl", "datecreated", "showsurveypolicynotice", "publicstatistics", "publicgraphs", "listpublic", "htmlemail", "sendconfirmation", "tokenanswerspersistence", "assessments", "usecaptcha", "usetokens", "bounce_email", "attributedescriptions", "emailresponseto", "emailnotificationto", "tokenlength", "showxquestions", "showgroupinfo", "shownoanswer", "showqnumcode", "bouncetime", "bounceprocessing", "bounceaccounttype", "bounceaccounthost", "bounceaccountpass", "bounceaccountencryption", "bounceaccountuser", "showwelcome", "showprogress", "questionindex", "navigationdelay", "nokeyboard", "alloweditaftercompletion", "googleanalyticsstyle", "googleanalyticsapikey", "tokenencryptionoptions"]
_SURVEY_INT = {"sid", "owner_id", "gsid", "autonumber_start", "showsurveypolicynotice", "tokenlength", "bouncetime", "questionindex", "navigationdelay"}
_LANG_INT = {"surveyls_dateformat", "surveyls_numberformat", "surveyls_survey_id", "surveyls_urldescription_int"}
_QUESTION_INT = {"qid", "parent_qid", "sid", "gid", "question_order", "scale_id", "same_default", "same_script"}
_PARTICIPANT_ORDER = ["usesleft", "completed", "emailstatus", "tid", "participant_id", "firstname", "lastname", "email", "token", "language", "blacklisted", "sent", "remindersent", "remindercount", "validfrom", "validuntil", "mpid"]

#: Question attributes LimeSurvey reports for a question type when none is set (get_question_properties).
_ATTRIBUTE_DEFAULTS: dict[str, dict[str, Any]] = {
    "F": {
        "answer_width": "", "array_filter": "", "array_filter_exclude": "", "array_filter_style": "0", "cssclass": "",
        "em_validation_q": "", "exclude_all_others": "", "hidden": "0", "hide_tip": "0", "max_answers": "",
        "min_answers": "", "page_break": "0", "public_statistics": "0", "random_group": "", "random_order": "0",
        "repeat_headings": None, "scale_export": "0", "statistics_graphtype": "0", "statistics_showgraph": "1",
        "use_dropdown": "0",
    },
}
_ATTRIBUTE_LANG_DEFAULTS: dict[str, dict[str, Any]] = {
    "F": {"em_validation_q_tip": "", "printable_help": None},
    "L": {
        "em_validation_q_tip": "", "other_replace_text": "", "printable_help": None, "time_limit_countdown_message": "",
        "time_limit_message": "", "time_limit_warning_2_message": "", "time_limit_warning_message": "",
    },
}

#: PHP signatures: method -> (parameter names, number required).
_SIGNATURES: dict[str, tuple[tuple[str, ...], int]] = {
    "get_session_key": (("username", "password", "plugin"), 2),
    "release_session_key": (("sSessionKey",), 1),
    "get_site_settings": (("sSessionKey", "sSetttingName"), 2),
    "import_survey": (("sSessionKey", "sImportData", "sImportDataType", "sNewSurveyName", "DestSurveyID"), 3),
    "activate_survey": (("sSessionKey", "iSurveyID", "aUserData"), 2),
    "activate_tokens": (("sSessionKey", "iSurveyID", "aAttributeFields"), 2),
    "list_surveys": (("sSessionKey", "sUsername"), 1),
    "get_survey_properties": (("sSessionKey", "iSurveyID", "aSurveySettings"), 2),
    "get_language_properties": (("sSessionKey", "iSurveyID", "aSurveyLocaleSettings", "sLang"), 2),
    "list_groups": (("sSessionKey", "iSurveyID", "sLanguage"), 2),
    "list_questions": (("sSessionKey", "iSurveyID", "iGroupID", "sLanguage"), 2),
    "get_question_properties": (("sSessionKey", "iQuestionID", "aQuestionSettings", "sLanguage"), 2),
    "get_fieldmap": (("sSessionKey", "iSurveyID", "sLanguage"), 2),
    "add_participants": (("sSessionKey", "iSurveyID", "aParticipantData", "bCreateToken"), 3),
    "delete_participants": (("sSessionKey", "iSurveyID", "aTokenIDs"), 3),
    "list_participants": (
        ("sSessionKey", "iSurveyID", "iStart", "iLimit", "bUnused", "aAttributes", "aConditions"),
        2,
    ),
    "get_participant_properties": (("sSessionKey", "iSurveyID", "aTokenQueryProperties", "aTokenProperties"), 3),
    "set_participant_properties": (("sSessionKey", "iSurveyID", "aTokenQueryProperties", "aTokenData"), 4),
    "set_survey_properties": (("sSessionKey", "iSurveyID", "aSurveyData"), 3),
    "add_response": (("sSessionKey", "iSurveyID", "aResponseData"), 3),
    "update_response": (("sSessionKey", "iSurveyID", "aResponseData"), 3),
    "get_response_ids": (("sSessionKey", "iSurveyID", "sToken"), 3),
    "get_summary": (("sSessionKey", "iSurveyID", "sStatName"), 2),
    "export_responses": (
        (
            "sSessionKey", "iSurveyID", "sDocumentType", "sLanguageCode", "sCompletionStatus", "sHeadingType",
            "sResponseType", "iFromResponseID", "iToResponseID", "aFields", "aAdditionalOptions",
        ),
        3,
    ),
    "export_responses_by_token": (
        (
            "sSessionKey", "iSurveyID", "sDocumentType", "sToken", "sLanguageCode", "sCompletionStatus",
            "sHeadingType", "sResponseType", "aFields", "aAdditionalOptions",
        ),
        4,
    ),
}
_SUMMARY_TOKEN = ("token_count", "token_invalid", "token_sent", "token_opted_out", "token_completed", "token_screenout")
_SUMMARY_RESP = ("completed_responses", "incomplete_responses", "full_responses")


class _Base64Result:
    """Marks an export result: the envelope is written by LimeSurvey's streaming encoder."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class _HttpError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ----------------------------------------------------------------------------- the survey model


def _lss_tables(data: bytes) -> tuple[ET.Element, dict[str, list[dict[str, str]]]]:
    root = ET.fromstring(data)
    tables: dict[str, list[dict[str, str]]] = {}
    for child in root:
        rows = child.find("rows")
        if rows is None:
            continue
        tables[child.tag] = [{c.tag: (c.text or "") for c in row} for row in rows.findall("row")]
    return root, tables


@dataclass
class _Question:
    qid: int
    parent_qid: int
    gid: int
    row: dict[str, Any]
    l10n: dict[str, dict[str, Any]] = field(default_factory=dict)
    subquestions: list[_Question] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    attributes_lang: dict[str, dict[str, str]] = field(default_factory=dict)
    l10n_id: int = 0


@dataclass
class _Survey:
    sid: int
    props: dict[str, Any]
    languages: list[str]
    lang_settings: dict[str, dict[str, Any]]
    groups: list[dict[str, Any]]
    questions: list[_Question]
    active: bool = False
    tokens: list[dict[str, Any]] | None = None
    responses: list[dict[str, Any]] = field(default_factory=list)
    next_rid: int = 1
    next_tid: int = 1

    @property
    def language(self) -> str:
        return str(self.props["language"])

    def title(self, lang: str | None = None) -> str:
        return str(self.lang_settings[lang or self.language]["surveyls_title"])

    def columns(self, lang: str | None = None) -> list[dict[str, Any]]:
        """The response columns after the fixed ones, with everything the exports and fieldmap need."""
        lang = lang or self.language
        gorder = {g["gid"]: i for i, g in enumerate(sorted(self.groups, key=lambda g: g["group_order"]))}
        cols: list[dict[str, Any]] = []
        for seq, q in enumerate(sorted(self.questions, key=lambda q: (gorder[q.gid], q.row["question_order"], q.qid))):
            base = f"{self.sid}X{q.gid}X{q.qid}"
            qtext = q.l10n.get(lang, {}).get("question", "")
            group = next(g for g in self.groups if g["gid"] == q.gid)
            common = {"q": q, "questionSeq": seq, "groupSeq": gorder[q.gid], "group_name": group["l10n"][lang]["group_name"], "qtext": qtext}
            qtype = q.row["type"]
            if q.subquestions:
                for sq in sorted(q.subquestions, key=lambda s: (s.row["question_order"], s.qid)):
                    cols.append({**common, "fieldname": base + sq.row["title"], "code": f"{q.row['title']}[{sq.row['title']}]",
                                 "aid": sq.row["title"], "sq": sq, "subtext": sq.l10n.get(lang, {}).get("question", "")})
            else:
                cols.append({**common, "fieldname": base, "code": q.row["title"], "aid": "", "sq": None})
            if q.row["other"] == "Y":
                cols.append({**common, "fieldname": base + "other", "code": f"{q.row['title']}[other]", "aid": "other",
                             "sq": None, "subtext": _OTHER.get(lang, "Other"), "is_other": True})
            cols[-1]["last"] = True
            for c in cols:
                c.setdefault("qtype", qtype)
        return cols


def _strip_html(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


class LimeSurveyModel:
    """The state of the stand-in server and the RC2 methods (one Python method per RPC method).

    Parameters
    ----------
    users
        user name -> password.
    first_gid, first_qid, first_l10n_id
        The next auto-increment values, so ids can match a recorded server.
    clock
        The server's clock (seconds since the epoch); ``add_response`` stamps dates with it and the
        login lockout counts with it.
    lockout_seconds, max_login_attempts
        LimeSurvey's ``timeOutTime`` and ``maxLoginAttempt``: after ``max_login_attempts`` failed logins
        in a row from one address every login from it is refused until ``lockout_seconds`` have passed
        since the last counted failure (600 and 3 by default, as recorded; a test may shorten the lock).
    tokens, survey_ids
        Values to hand out first where LimeSurvey draws at random (``create_tokens`` access codes, the
        new id of an import whose desired id is taken), so a replay can reproduce a recording.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        first_gid: int = 1,
        first_qid: int = 1,
        first_l10n_id: int = 1,
        version: str = "6.14.0",
        clock: Callable[[], float] = time.time,
        lockout_seconds: float = 600,
        max_login_attempts: int = 3,
        tokens: Iterable[str] = (),
        survey_ids: Iterable[int] = (),
    ) -> None:
        self.users = dict(users or {"admin": "password"})
        self.clock = clock
        self.lockout_seconds = lockout_seconds
        self.max_login_attempts = max_login_attempts
        self.failed_logins: dict[str, tuple[int, int]] = {}  # ip -> (count, last attempt, whole seconds)
        self.client_ip = "127.0.0.1"
        self.preset_tokens: deque[str] = deque(tokens)
        self.preset_survey_ids: deque[int] = deque(survey_ids)
        self.sessions: set[str] = set()
        self.released: list[str] = []
        self.surveys: dict[int, _Survey] = {}
        self.next_gid = first_gid
        self.next_qid = first_qid
        self.next_l10n_id = first_l10n_id
        self.calls: list[str] = []
        self.settings: dict[str, Any] = {
            "versionnumber": version,
            "dbversionnumber": 630,
            "buildnumber": 250520,
            "defaultlang": "en",
            "sitename": "LimeSurvey",
        }
        self.lock = threading.RLock()

    # ---- helpers
    def _check_key(self, key: object) -> dict[str, str] | None:
        if key not in self.sessions:
            return {"status": "Invalid session key"}
        return None

    def add_foreign_survey(self, sid: int, title: str, *, active: bool = True) -> None:
        """A survey that exists on the server but is not the study's (only listed)."""
        props = {c: None for c in _SURVEY_COLUMNS}
        props.update({"sid": sid, "gsid": 1, "language": "en", "active": "Y" if active else "N"})
        self.surveys[sid] = _Survey(sid, props, ["en"], {"en": {"surveyls_title": title}}, [], [], active=active)

    # ---- sessions and settings
    def _now(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock()))

    def get_session_key(self, username: str, password: str, plugin: str = "Authdb") -> Any:
        now = int(self.clock())
        count, last = self.failed_logins.get(self.client_ip, (0, 0))
        if count >= self.max_login_attempts:
            if not now > last + self.lockout_seconds:
                return {"status": _LOCKOUT}
            del self.failed_logins[self.client_ip]
            count = 0
        if self.users.get(str(username)) != password:
            self.failed_logins[self.client_ip] = (count + 1, now)
            return {"status": "Invalid user name or password"}
        self.failed_logins.pop(self.client_ip, None)
        key = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))
        self.sessions.add(key)
        return key

    def release_session_key(self, key: str) -> Any:
        if key in self.sessions:
            self.sessions.discard(key)
            self.released.append(key)
        return "OK"

    def get_site_settings(self, key: str, name: str) -> Any:
        if err := self._check_key(key):
            return err
        if name not in self.settings:
            return {"status": "Invalid setting"}
        return self.settings[name]

    # ---- surveys
    def import_survey(self, key: str, data: str, data_type: str, new_name: str | None = None, dest_sid: int | None = None) -> Any:
        if err := self._check_key(key):
            return err
        if data_type not in ("lss",):
            return {"status": "Invalid extension"}
        try:
            raw = base64.b64decode(data)
            _, t = _lss_tables(raw)
        except (ValueError, ET.ParseError):
            return {"status": "Error: Invalid LimeSurvey survey structure (XML) file"}
        srow = t["surveys"][0]
        sid = int(dest_sid or srow["sid"])
        if sid in self.surveys:
            # the desired id is taken: a random free one, without a word in the reply
            sid = self.preset_survey_ids.popleft() if self.preset_survey_ids else secrets.randbelow(900_000) + 100_000
            while sid in self.surveys:
                sid = secrets.randbelow(900_000) + 100_000
        props: dict[str, Any] = dict.fromkeys(_SURVEY_COLUMNS)
        props.update({"owner_id": 1, "active": "N", "datecreated": time.strftime("%Y-%m-%d %H:%M:%S")})
        for k, v in srow.items():
            if k in props:
                props[k] = v
        props["sid"] = sid
        for k in _SURVEY_INT:
            if props[k] is not None:
                props[k] = int(props[k])
        languages = [props["language"], *[x for x in (props["additional_languages"] or "").split() if x]]
        lang_settings = {}
        for r in t.get("surveys_languagesettings", []):
            ls = {k: (int(v) if k in _LANG_INT and v != "" else v) for k, v in r.items()}
            ls["surveyls_survey_id"] = sid
            lang_settings[r["surveyls_language"]] = ls
        if new_name:
            lang_settings[props["language"]]["surveyls_title"] = new_name
        gid_map: dict[str, int] = {}
        groups = []
        for g in t.get("groups", []):
            gid_map[g["gid"]] = self.next_gid
            groups.append({"gid": self.next_gid, "group_order": int(g["group_order"]), "randomization_group": g.get("randomization_group", ""),
                           "grelevance": g.get("grelevance", ""), "l10n": {}})
            self.next_gid += 1
        for gl in t.get("group_l10ns", []):
            grp = next(x for x in groups if x["gid"] == gid_map[gl["gid"]])
            grp["l10n"][gl["language"]] = {"group_name": gl["group_name"], "description": gl.get("description", "")}
        qid_map: dict[str, _Question] = {}
        questions: list[_Question] = []
        for table in ("questions", "subquestions"):
            for r in t.get(table, []):
                row = {k: (int(v) if k in _QUESTION_INT and v != "" else v) for k, v in r.items()}
                q = _Question(self.next_qid, 0, gid_map[r["gid"]], row)
                self.next_qid += 1
                qid_map[r["qid"]] = q
                if int(r["parent_qid"] or 0):
                    parent = qid_map[r["parent_qid"]]
                    q.parent_qid = parent.qid
                    parent.subquestions.append(q)
                else:
                    questions.append(q)
                row.update({"qid": q.qid, "parent_qid": q.parent_qid, "gid": q.gid, "sid": sid})
        for ql in t.get("question_l10ns", []):
            q = qid_map[ql["qid"]]
            q.l10n[ql["language"]] = {"question": ql["question"], "help": ql.get("help", ""), "script": ql.get("script", "")}
            q.l10n_id = self.next_l10n_id
            self.next_l10n_id += 1
        answer_texts: dict[str, dict[str, str]] = {}
        for al in t.get("answer_l10ns", []):
            answer_texts.setdefault(al["aid"], {})[al["language"]] = al["answer"]
        for a in t.get("answers", []):
            qid_map[a["qid"]].answers.append(
                {"code": a["code"], "sortorder": int(a["sortorder"]), "assessment_value": int(a.get("assessment_value") or 0),
                 "scale_id": int(a.get("scale_id") or 0), "l10n": answer_texts.get(a["aid"], {})}
            )
        for at in t.get("question_attributes", []):
            q = qid_map[at["qid"]]
            if at.get("language"):
                q.attributes_lang.setdefault(at["language"], {})[at["attribute"]] = at["value"]
            else:
                q.attributes[at["attribute"]] = at["value"]
        self.surveys[sid] = _Survey(sid, props, languages, lang_settings, groups, questions)
        return sid

    def _survey(self, sid: object) -> _Survey | None:
        try:
            return self.surveys.get(int(sid))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return None

    def activate_survey(self, key: str, sid: int, user_data: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        if s.active:
            return {"status": "Error: Survey already active"}
        s.active = True
        s.props["active"] = "Y"
        return {"status": "OK", "pluginFeedback": None, "isAllowRegister": False}

    def activate_tokens(self, key: str, sid: int, attributes: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        if s.tokens is not None:
            raise _RpcError(
                "CDbCommand failed to execute the SQL statement: SQLSTATE[42S01]: Base table or view already exists: "
                f"1050 Table 'lime_tokens_{s.sid}' already exists"
            )
        s.tokens = []
        return {"status": "OK"}

    def list_surveys(self, key: str, username: str | None = None) -> Any:
        if err := self._check_key(key):
            return err
        if not self.surveys:
            return {"status": "No surveys found"}
        return [
            {"sid": s.sid, "gsid": s.props.get("gsid"), "surveyls_title": s.title(), "startdate": s.props.get("startdate"),
             "expires": s.props.get("expires"), "active": "Y" if s.active else "N"}
            for s in sorted(self.surveys.values(), key=lambda s: s.sid)
        ]

    def get_survey_properties(self, key: str, sid: int, settings: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        props = dict(s.props)
        props["active"] = "Y" if s.active else "N"
        if not settings:
            return props
        out = {k: props[k] for k in settings if k in props}
        return out or {"status": "No valid Data"}

    def get_language_properties(self, key: str, sid: int, settings: Any = None, lang: str | None = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        lang = lang or s.language
        if lang not in s.lang_settings:
            return {"status": "Error: Invalid language"}
        ls = s.lang_settings[lang]
        if not settings:
            return dict(ls)
        return {k: ls[k] for k in settings if k in ls}

    def list_groups(self, key: str, sid: int, lang: str | None = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        lang = lang or s.language
        return [
            {"id": g["gid"], "gid": g["gid"], "sid": s.sid, "group_order": g["group_order"], "randomization_group": g["randomization_group"],
             "grelevance": g["grelevance"], "group_name": g["l10n"][lang]["group_name"], "description": g["l10n"][lang]["description"],
             "language": lang}
            for g in sorted(s.groups, key=lambda g: g["group_order"])
        ]

    def _question_row(self, s: _Survey, q: _Question, parent: _Question | None, lang: str) -> dict[str, Any]:
        r = q.row
        src = parent or q
        return {
            "id": q.qid, "question": q.l10n.get(lang, {}).get("question", ""), "help": q.l10n.get(lang, {}).get("help", ""),
            "language": lang, "qid": q.qid, "parent_qid": q.parent_qid, "sid": s.sid, "type": src.row["type"], "title": r["title"],
            "preg": r.get("preg", ""), "other": r.get("other", "N"), "mandatory": r.get("mandatory", "N"), "encrypted": r.get("encrypted", "N"),
            "question_order": r["question_order"], "scale_id": r.get("scale_id", 0), "same_default": r.get("same_default", 0),
            "question_theme_name": None if parent else r.get("question_theme_name"), "modulename": r.get("modulename", ""),
            "gid": q.gid, "relevance": r.get("relevance", "1"), "same_script": r.get("same_script", 0),
        }

    def list_questions(self, key: str, sid: int, gid: int | None = None, lang: str | None = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        lang = lang or s.language
        gorder = {g["gid"]: g["group_order"] for g in s.groups}
        rows = []
        for q in s.questions:
            if gid is not None and q.gid != int(gid):
                continue
            rows.append((gorder[q.gid], q.row["question_order"], q.qid, self._question_row(s, q, None, lang)))
            for sq in q.subquestions:
                rows.append((gorder[q.gid], sq.row["question_order"], sq.qid, self._question_row(s, sq, q, lang)))
        if not rows:
            return {"status": "No questions found"}
        if gid is not None:
            # one group: the questions first, then the subquestions of each
            return [r[3] for r in sorted(rows, key=lambda r: (r[3]["parent_qid"], r[1], r[2]))]
        return [r[3] for r in sorted(rows, key=lambda r: r[:3])]

    def _find_question(self, qid: int) -> tuple[_Survey, _Question] | None:
        for s in self.surveys.values():
            for q in s.questions:
                if q.qid == int(qid):
                    return s, q
        return None

    def get_question_properties(self, key: str, qid: int, settings: Any = None, lang: str | None = None) -> Any:
        if err := self._check_key(key):
            return err
        found = self._find_question(qid)
        if found is None:
            return {"status": "Error: Invalid questionid"}
        s, q = found
        lang = lang or s.language
        r = q.row
        l10n = q.l10n.get(lang, {"question": "", "help": "", "script": ""})
        subs = {str(sq.qid): {"title": sq.row["title"], "question": sq.l10n.get(lang, {}).get("question", ""), "scale_id": sq.row.get("scale_id", 0)}
                for sq in sorted(q.subquestions, key=lambda x: x.row["question_order"])}
        answers = {a["code"]: {"answer": a["l10n"].get(lang, ""), "assessment_value": a["assessment_value"], "scale_id": a["scale_id"], "order": a["sortorder"]}
                   for a in sorted(q.answers, key=lambda a: a["sortorder"])}
        if subs:
            available: Any = {v["title"]: v["question"] for v in subs.values()}
        elif answers:
            available = {k: v["answer"] for k, v in answers.items()}
        else:
            available = "No available answers"
        attributes = dict(_ATTRIBUTE_DEFAULTS.get(r["type"], {}))
        attributes.update(q.attributes)
        attributes_lang = dict(_ATTRIBUTE_LANG_DEFAULTS.get(r["type"], {"em_validation_q_tip": "", "printable_help": None}))
        attributes_lang.update(q.attributes_lang.get(lang, {}))
        full: dict[str, Any] = {k: r.get(k) for k in ("qid", "parent_qid", "sid", "gid", "type", "title", "preg", "other", "mandatory", "encrypted",
                                                       "question_order", "scale_id", "same_default", "relevance", "question_theme_name",
                                                       "modulename", "same_script")}
        full.update({
            "question": l10n["question"], "help": l10n["help"], "script": l10n.get("script", ""),
            "questionl10ns": {"id": q.l10n_id, "qid": q.qid, "question": l10n["question"], "help": l10n["help"], "script": l10n.get("script", ""), "language": lang},
            "available_answers": available,
            "subquestions": subs or "No available answers",
            "attributes": dict(sorted(attributes.items())),
            "attributes_lang": dict(sorted(attributes_lang.items())),
            "answeroptions": answers or "No available answer options",
            "defaultvalue": None,
        })
        if not settings:
            return full
        return {k: full[k] for k in settings if k in full}

    def get_fieldmap(self, key: str, sid: int, lang: str | None = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        out: dict[str, Any] = {}
        for name, q in zip(_FIXED, _FIXED_ADMIN, strict=True):
            if name in ("submitdate", "startdate", "datestamp"):
                out[name] = {"fieldname": name, "type": name, "sid": s.sid}
            else:
                out[name] = {"fieldname": name, "sid": s.sid, "type": name}
            out[name].update({"gid": "", "qid": "", "aid": "", "title": "", "question": q, "group_name": ""})
        for c in s.columns(lang):
            q = c["q"]
            e: dict[str, Any] = {"fieldname": c["fieldname"], "type": c["qtype"], "sid": s.sid, "gid": q.gid, "qid": q.qid, "aid": c["aid"]}
            if c["sq"] is not None:
                e["sqid"] = c["sq"].qid
            e["title"] = q.row["title"]
            e["question"] = c["qtext"]
            if "subtext" in c:
                e["subquestion"] = c["subtext"]
            e.update({"group_name": c["group_name"], "mandatory": q.row.get("mandatory", "N"), "encrypted": q.row.get("encrypted", "N"),
                      "hasconditions": "N", "usedinconditions": "N", "questionSeq": c["questionSeq"], "groupSeq": c["groupSeq"]})
            if c["sq"] is not None:
                e.update({"preg": q.row.get("preg", ""), "SQrelevance": c["sq"].row.get("relevance", "1")})
            if c.get("last"):
                e.update({"relevance": q.row.get("relevance", "1"), "grelevance": "1"})
                if c["sq"] is None:
                    e["preg"] = q.row.get("preg", "")
                e.update({"other": q.row.get("other", "N"), "help": q.l10n.get(lang or s.language, {}).get("help", "")})
            out[c["fieldname"]] = e
        return out

    # ---- participants
    def _participant_record(self, p: dict[str, Any], s: _Survey) -> dict[str, Any]:
        rec = {k: p.get(k) for k in _PARTICIPANT_ORDER}
        for k in sorted(k for k in p if k.startswith("attribute_")):
            rec[k] = p[k]
        return rec

    def add_participants(self, key: str, sid: int, data: list[dict[str, Any]], create_tokens: bool = True) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        if s.tokens is None:
            return {"status": "No survey participants table"}
        attrs = sorted(json.loads(s.props.get("attributedescriptions") or "{}"))
        taken = {p["token"] for p in s.tokens}
        result = []
        for given in data:
            errors: dict[str, list[str]] = {}
            token = given.get("token")
            if create_tokens:
                if self.preset_tokens:
                    token = self.preset_tokens.popleft()
                else:
                    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(int(s.props.get("tokenlength") or 15)))
            if token and token in taken:
                errors["token"] = [f'Access code "{token}" has already been taken.']
            email = given.get("email", "")
            if email and not _EMAIL.match(str(email)):
                errors["email"] = ["Invalid email address."]
            if errors:
                result.append({**given, "errors": errors})
                continue
            rec: dict[str, Any] = {"sent": "N", "remindersent": "N", "remindercount": 0, "completed": "N", "usesleft": 1, "emailstatus": "OK"}
            rec.update(given)
            rec["token"] = token if token is not None else ""
            rec.setdefault("language", "")
            for a in attrs:
                rec.setdefault(a, "")
            rec["tid"] = str(s.next_tid)
            for k in ("participant_id", "blacklisted", "validfrom", "validuntil", "mpid"):
                rec.setdefault(k, None)
            stored = dict(rec)
            stored["tid"] = s.next_tid
            s.tokens.append(stored)
            taken.add(stored["token"])
            s.next_tid += 1
            result.append(rec)
        return result

    def delete_participants(self, key: str, sid: int, tids: list[int]) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None or s.tokens is None:
            return {"status": "Error: No survey participants table"}
        out = {}
        for t in tids:
            hit = [p for p in s.tokens if p["tid"] == int(t)]
            if hit:
                s.tokens.remove(hit[0])
                out[str(t)] = "Deleted"
            else:
                out[str(t)] = "Invalid token ID"
        return out

    def list_participants(self, key: str, sid: int, start: int = 0, limit: int = 10, unused: bool = False,
                          attributes: Any = False, conditions: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        if s.tokens is None:
            return {"status": "Error: No survey participants table"}
        # LimeSurvey 6.14: WHERE tid >= iStart [AND conditions] ORDER BY tid LIMIT iLimit (iStart is no offset)
        rows = sorted((p for p in s.tokens if p["tid"] >= int(start or 0)), key=lambda p: p["tid"])
        if unused:
            rows = [p for p in rows if p.get("completed") == "N"]
        for k, v in (conditions or {}).items():
            rows = [p for p in rows if _condition(p.get(k), v)]
        rows = rows[: int(limit)]
        if not rows:
            return {"status": "No survey participants found."}
        out = []
        for p in rows:
            rec = {"tid": p["tid"], "token": p["token"], "participant_info": {"firstname": p.get("firstname", ""), "lastname": p.get("lastname", ""),
                                                                              "email": p.get("email", "")}}
            for a in attributes or []:
                rec[a] = p.get(a)
            out.append(rec)
        return out

    def _match_participant(self, s: _Survey, query: Any) -> dict[str, Any] | str:
        """The one participant ``query`` (a tid or a property mapping) names, else the status to answer."""
        if not isinstance(query, dict):
            hit = [p for p in s.tokens or [] if p["tid"] == int(query)]
            return hit[0] if hit else "Error: Invalid tokenid"
        hits = [p for p in sorted(s.tokens or [], key=lambda p: p["tid"]) if all(str(p.get(k)) == str(v) for k, v in query.items())]
        if not hits:
            return "Error: No results were found based on your attributes."
        if len(hits) > 1:
            return "Error: More than 1 result was found based on your attributes."
        return hits[0]

    def get_participant_properties(self, key: str, sid: int, query: Any, props: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None or s.tokens is None:
            return {"status": "Error: No survey participants table"}
        p = self._match_participant(s, query)
        if isinstance(p, str):
            return {"status": p}
        rec = self._participant_record(p, s)
        if props:
            return {k: v for k, v in rec.items() if k in props}
        return rec

    def set_participant_properties(self, key: str, sid: int, query: Any, data: dict[str, Any]) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None or s.tokens is None:
            return {"status": "Error: No survey participants table"}
        p = self._match_participant(s, query)
        if isinstance(p, str):
            return {"status": p}
        known = set(_PARTICIPANT_ORDER) | {k for k in p if k.startswith("attribute_")}
        change = {k: v for k, v in (data or {}).items() if k in known and k != "tid"}
        if not change:
            return {"status": "No valid Data"}
        invalid: dict[str, list[str]] = {}
        if "email" in change and change["email"] and not _EMAIL.match(str(change["email"])):
            invalid["email"] = ["Invalid email address."]
        if "language" in change and change["language"] and change["language"] not in s.languages:
            invalid["language"] = ["Language code is invalid in this survey"]
        if invalid:
            return {"status": invalid}  # a validation error: status is an object, nothing is saved
        p.update(change)
        return self._participant_record(p, s)

    # ---- responses
    def add_response(self, key: str, sid: int, data: dict[str, Any]) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        if not s.active:
            return {"status": "No survey response table"}
        names = {c["fieldname"] for c in s.columns()}
        rec: dict[str, Any] = {"id": s.next_rid, "submitdate": None, "lastpage": None, "startlanguage": s.language, "seed": None,
                               "token": None, "startdate": None, "datestamp": None}
        for k, v in data.items():
            if k in rec or k in names:
                rec[k] = v
        # LimeSurvey stamps submitdate when the key is absent (the response is complete); only an
        # empty value leaves it NULL.  With datestamp=Y, startdate and datestamp are stamped if absent.
        now = self._now()
        if "submitdate" not in data:
            rec["submitdate"] = now
        if s.props.get("datestamp") == "Y":
            for k in ("startdate", "datestamp"):
                if not rec[k]:
                    rec[k] = now
        for k in ("submitdate", "startdate", "datestamp"):
            if rec[k] == "":
                rec[k] = None
        rec["id"] = s.next_rid
        s.next_rid += 1
        s.responses.append(rec)
        return str(rec["id"])

    def update_response(self, key: str, sid: int, data: dict[str, Any]) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        if not s.active:
            return {"status": "Survey is not active"}
        if s.props.get("alloweditaftercompletion") != "Y":
            # checked before the response is looked up: every update is refused
            return {"status": "Survey does not allow edit after completion"}
        if "id" in data:
            hit = [r for r in s.responses if r["id"] == int(data["id"])]
        elif "token" in data:
            hit = [r for r in s.responses if r["token"] == data["token"]]
        else:
            return {"status": "Missing response identifier (id|token)"}
        if len(hit) != 1:
            return {"status": "No matching Response"}
        names = set(_FIXED) | {c["fieldname"] for c in s.columns()}
        bad = [k for k in data if k not in names]
        if bad:
            return {"status": "Invalid Column names supplied: " + ", ".join(bad)}
        hit[0].update({k: (None if v == "" and k in ("submitdate", "startdate", "datestamp") else v) for k, v in data.items() if k != "id"})
        return True

    def resume_response(self, sid: int, rid: int, answers: dict[str, Any], *, submit: bool = True) -> None:
        """What the web survey does when a participant comes back (``tokenanswerspersistence=Y``).

        Not an RC2 method: the participant's row keeps its id, token and ``startdate``; the answers,
        ``lastpage`` and ``datestamp`` change, and finishing sets ``submitdate``.  This works whatever
        ``alloweditaftercompletion`` says (that setting governs edits after completion only).
        """
        with self.lock:
            row = next(r for r in self.surveys[int(sid)].responses if r["id"] == int(rid))
            row.update(answers)
            row["datestamp"] = self._now()
            if submit:
                row["submitdate"] = self._now()

    def set_survey_properties(self, key: str, sid: int, data: dict[str, Any]) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        out = {}
        for k, v in (data or {}).items():
            ok = k in s.props and k not in ("sid", "active")
            if ok:
                s.props[k] = v
            out[k] = ok
        return out

    def get_response_ids(self, key: str, sid: int, token: str) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Error: Invalid survey ID"}
        return [r["id"] for r in s.responses if r["token"] == token]

    def get_summary(self, key: str, sid: int, stat: str = "all") -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "Invalid surveyid"}
        stats: dict[str, int] = {}
        if s.tokens is not None:
            toks = s.tokens
            stats.update({
                "token_count": len(toks),
                "token_invalid": sum(1 for p in toks if not p.get("token")),
                "token_sent": sum(1 for p in toks if p.get("sent") not in ("N", None, "")),
                "token_opted_out": sum(1 for p in toks if p.get("emailstatus") == "OptOut"),
                "token_completed": sum(1 for p in toks if p.get("completed") not in ("N", None, "")),
                "token_screenout": sum(1 for p in toks if p.get("emailstatus") == "screenout"),
            })
        if s.active:  # an inactive survey has no response table, so no response counts
            done = sum(1 for r in s.responses if r["submitdate"] is not None)
            stats.update({"completed_responses": done, "incomplete_responses": len(s.responses) - done, "full_responses": len(s.responses)})
        if stat == "all":
            return stats
        if stat not in _SUMMARY_TOKEN + _SUMMARY_RESP:
            return {"status": "Invalid summary key"}
        if stat not in stats:
            return {"status": "No available data"}
        return stats[stat]

    def _export(self, s: _Survey, rows: list[dict[str, Any]], doc: str, lang: str, heading: str, rtype: str,
                fields: Any, options: Any) -> Any:
        cols = s.columns(lang)
        fixed_long = _FIXED_LONG.get(lang, _FIXED_LONG["en"])
        spec: list[tuple[str, str, dict[str, Any] | None]] = []  # (storage name, heading, column)
        for i, f in enumerate(_FIXED):
            spec.append((f, fixed_long[i] if heading == "full" else f, None))
        for c in cols:
            if heading == "full":
                h = _strip_html(c["qtext"]) + (f" [{_strip_html(c['subtext'])}]" if "subtext" in c else "")
            else:
                h = c["code"]
            spec.append((c["fieldname"], h, c))
        if fields:
            pos = {x[0]: x for x in spec}
            spec = [pos[f] for f in fields if f in pos]
        yes, no = _YES_NO.get(lang, _YES_NO["en"])
        out_rows = []
        for r in rows:
            o: dict[str, Any] = {}
            for name, h, c in spec:
                v = r.get(name)
                if rtype == "long" and c is not None:
                    q = c["q"]
                    if c["qtype"] == "M" and not c.get("is_other"):
                        v = yes if v == "Y" else (no if v == "" else "N/A")
                    elif v is not None and v != "" and not c.get("is_other"):
                        if c["qtype"] == "Y":
                            v = {"Y": yes, "N": no}.get(v, v)
                        elif c["qtype"] in ("L", "F", "!", "O"):
                            if v == "-oth-":
                                v = _OTHER.get(lang, "Other")
                            else:
                                v = next((a["l10n"].get(lang, v) for a in q.answers if a["code"] == v), v)
                o[h] = v
            out_rows.append(o)
        heads = [h for _, h, _ in spec]
        if doc == "csv":
            sep = (options or {}).get("csvFieldSeparator", ";") if isinstance(options, dict) else ";"
            return _Base64Result(write_csv_export(heads, out_rows, sep=sep))
        # json: ids and lastpage are integers, whatever the heading
        recs = []
        int_heads = {h for n, h, _ in spec if n in ("id", "lastpage")}
        for o in out_rows:
            rec = {h: (int(o[h]) if h in int_heads and o[h] is not None else (None if o[h] is None else str(o[h]))) for h in heads}
            recs.append(php_json_dumps(rec))
        return _Base64Result(('{"responses": [' + ",".join(recs) + "]}").encode("utf-8"))

    def export_responses(self, key: str, sid: int, doc: str, lang: str | None = None, completion: str = "all",
                         heading: str = "code", rtype: str = "short", from_id: int | None = None, to_id: int | None = None,
                         fields: Any = None, options: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "No permission"}
        if not s.active:
            return {"status": "No Data, survey table does not exist."}
        lang = lang or s.language
        if lang not in s.languages:
            return {"status": "Language code not found for this survey."}
        if not s.responses:
            return {"status": "No Data, could not get max id."}
        if doc not in ("csv", "json"):
            raise _RpcError(f"Writer for {doc} should implement IWriter")
        lo = int(from_id) if from_id is not None else min(r["id"] for r in s.responses)
        hi = int(to_id) if to_id is not None else max(r["id"] for r in s.responses)
        rows = [r for r in s.responses if lo <= r["id"] <= hi and _completion_ok(r, completion)]
        return self._export(s, rows, doc, lang, heading or "code", rtype or "short", fields, options)

    def export_responses_by_token(self, key: str, sid: int, doc: str, token: Any, lang: str | None = None, completion: str = "all",
                                  heading: str = "code", rtype: str = "short", fields: Any = None, options: Any = None) -> Any:
        if err := self._check_key(key):
            return err
        s = self._survey(sid)
        if s is None:
            return {"status": "No permission"}
        if not s.responses:
            return {"status": "No Data, could not get max id."}
        lang = lang or s.language
        if isinstance(token, list):
            if not token:
                return {"status": "No Data, empty tokens array parameter"}
            tokens = set(token)
        else:
            tokens = {token}
            if not any(r["token"] == token for r in s.responses):
                return {"status": "No Response found for Token"}
        if doc not in ("csv", "json"):
            raise _RpcError(f"Writer for {doc} should implement IWriter")
        rows = [r for r in s.responses if r["token"] in tokens and _completion_ok(r, completion)]
        return self._export(s, rows, doc, lang, heading or "code", rtype or "short", fields, options)


def _condition(value: Any, cond: Any) -> bool:
    """A ``list_participants`` condition: a value (equality) or ``[operator, value]``."""
    if isinstance(cond, list) and len(cond) == 2 and str(cond[0]).upper() in ("<", ">", ">=", "<=", "=", "<>", "LIKE", "IN"):
        op, ref = str(cond[0]).upper(), cond[1]
        if op == "IN":
            return str(value) in {str(x) for x in (ref if isinstance(ref, list) else [ref])}
        if op == "LIKE":
            return re.fullmatch(re.escape(str(ref)).replace("%", ".*").replace("_", "."), str(value)) is not None
        a: Any = value
        b: Any = ref
        if isinstance(value, int) or isinstance(ref, int):
            a, b = float(value), float(ref)
        return {"<": a < b, ">": a > b, ">=": a >= b, "<=": a <= b, "=": a == b, "<>": a != b}[op]
    return str(value) == str(cond)


def _completion_ok(r: dict[str, Any], completion: str | None) -> bool:
    if completion == "complete":
        return r["submitdate"] is not None
    if completion == "incomplete":
        return r["submitdate"] is None
    return True


class _RpcError(Exception):
    """An error LimeSurvey reports in the envelope's ``error`` field."""


# ----------------------------------------------------------------------------- faults and HTTP


@dataclass
class Fault:
    """A fault injected into the next ``times`` calls of ``method``.

    ``kind`` is ``drop`` (close the connection after part of the reply), ``stall`` (sleep ``seconds``
    before replying), ``bad_base64`` (corrupt an export's base64), ``empty`` (an export of 0 bytes),
    ``truncated`` (cut the JSON reply in half) or ``http500`` (the LimeSurvey error page).
    """

    method: str
    kind: str
    times: int = 1
    seconds: float = 5.0


class StandInServer:
    """Run :class:`LimeSurveyModel` behind a real HTTP server on 127.0.0.1 (ephemeral port).

    Use as a context manager; :attr:`url` is the RemoteControl endpoint.
    """

    PATH = "/index.php/admin/remotecontrol"

    def __init__(self, model: LimeSurveyModel | None = None, *, assets: str = "/assets", root: str = "/var/www/limesurvey") -> None:
        self.model = model or LimeSurveyModel()
        self.assets = assets
        self.root = root
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> StandInServer:
        handler = _make_handler(self)
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The RemoteControl endpoint."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.PATH}"

    def inject(self, method: str, kind: str, *, times: int = 1, seconds: float = 5.0) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``kind`` (see :class:`Fault`)."""
        self.faults.append(Fault(method, kind, times, seconds))

    def _take_fault(self, method: str) -> Fault | None:
        for f in self.faults:
            if f.method == method and f.times > 0:
                f.times -= 1
                return f
        return None

    # ---- request handling (returns status, content type, body)
    def error_page(self, message: str) -> bytes:
        return _ERROR_PAGE.replace("{{ASSETS}}", self.assets).replace("{{MESSAGE}}", message).encode("utf-8")

    def handle(self, method_http: str, content_type: str, body: bytes, path: str | None = None,
               client_ip: str = "127.0.0.1") -> tuple[int, str, bytes, Fault | None]:
        html_ct = "text/html; charset=UTF-8"
        if method_http == "POST" and path is not None and path.rstrip("/") != self.PATH:
            # Yii checks the CSRF token of every POST but those to the remotecontrol action, before routing
            return 400, html_ct, _CSRF_PAGE.replace("{{ASSETS}}", self.assets).encode("utf-8"), None
        if method_http != "POST" or "application/json" not in content_type.lower():
            return 200, html_ct, b"", None
        try:
            req = json.loads(body.decode("utf-8"))
            if not isinstance(req, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return 200, "application/json", b'{"id":null,"result":null,"error":"unable to decode malformed json"}', None
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params", [])
        fault = self._take_fault(str(method))
        with self.model.lock:
            self.model.client_ip = client_ip
            self.model.calls.append(str(method))
            try:
                result, error = self._dispatch(str(method), params), None
            except _HttpError as exc:
                return 500, html_ct, self.error_page(exc.message), None
            except _RpcError as exc:
                result, error = None, str(exc)
        if rid is None or rid == 0:
            return 200, html_ct, b"", fault
        if isinstance(result, _Base64Result):
            b64 = base64.b64encode(result.payload).decode("ascii")
            if fault is not None and fault.kind == "bad_base64":
                b64 = b64[: len(b64) // 2] + "!*" + b64[len(b64) // 2 + 3:]
            if fault is not None and fault.kind == "empty":
                b64 = ""
            out = "{" + f'"id":{php_json_dumps(rid)}, "result":"{b64}", "error":null' + "}"
            return 200, "application/json", out.encode("ascii"), fault
        out = "{" + f'"id":{php_json_dumps(rid)},"result":{php_json_dumps(result)},"error":{php_json_dumps(error)}' + "}"
        return 200, "application/json", out.encode("ascii"), fault

    def _dispatch(self, method: str, params: Any) -> Any:
        fn = getattr(self.model, method, None) if method in _SIGNATURES else None
        if fn is None:
            raise _HttpError(
                "call_user_func_array(): Argument #1 ($callback) must be a valid callback, class remotecontrol_handle does not have a "
                f"method &quot;{html.escape(method, quote=False)}&quot;"
            )
        names, required = _SIGNATURES[method]
        if isinstance(params, dict):
            args = [params[n] for n in names if n in params]
        else:
            args = list(params)
        if len(args) < required:
            raise _HttpError(
                f"Too few arguments to function remotecontrol_handle::{method}(), {len(args)} passed in "
                f"{self.root}/application/libraries/LSjsonRPCServer.php on line 37 and at least {required} expected"
            )
        return fn(*args[: len(names)])


class _QuietHTTPServer(ThreadingHTTPServer):
    """Clients that hang up (time-outs in the fault tests) are not errors of the server."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _make_handler(server: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append({"method": self.command, "body": body})
            status, ctype, out, fault = server.handle(self.command, self.headers.get("Content-Type", ""), body, self.path,
                                                      str(self.client_address[0]))
            if fault is not None and fault.kind == "stall":
                time.sleep(fault.seconds)
            if fault is not None and fault.kind == "truncated":
                out = out[: len(out) // 2]
            self.send_response(status)
            for k, v in (
                ("X-Powered-By", "PHP/8.2.36"),
                ("Expires", "Thu, 19 Nov 1981 08:52:00 GMT"),
                ("Cache-Control", "no-store, no-cache, must-revalidate"),
                ("Pragma", "no-cache"),
                ("Access-Control-Allow-Origin", "*"),
            ):
                self.send_header(k, v)
            self.send_header("content-type" if ctype == "application/json" else "Content-type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.send_header("Connection", "close")
            self.end_headers()
            if fault is not None and fault.kind == "drop":
                self.wfile.write(out[: max(1, len(out) // 3)])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(out)
            self.close_connection = True

        def do_POST(self) -> None:
            self._reply()

        def do_GET(self) -> None:
            self._reply()

    return Handler


def iter_calls(path: Path) -> Iterator[dict[str, Any]]:
    """The recorded calls of one golden transcript file."""
    yield from json.loads(path.read_text(encoding="utf-8"))["calls"]
