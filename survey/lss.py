"""The LimeSurvey survey structure (``.lss``) generated from :data:`survey.questionnaire.QUESTIONNAIRE`.

:func:`build_lss` writes the XML document LimeSurvey 6 imports (``import_survey``): Dutch as the base
language and English as an additional one, a participants table whose ``attribute_1`` ("pseudo_id")
carries the pseudonymous person key, not anonymised (responses keep their token), date stamps on.
:func:`fieldmap_from_lss` reads an ``.lss`` back into the SGQA -> code-heading map, so internal column
names of an export can be resolved without the server.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from survey.questionnaire import QUESTIONNAIRE, Question, Questionnaire

__all__ = ["DEFAULT_SURVEY_ID", "build_lss", "fieldmap_from_lss"]

#: The survey id written into the ``.lss`` (LimeSurvey keeps it when free on import).
DEFAULT_SURVEY_ID = 461283

_THEME = {"F": "arrays/array", "Y": "yesno", "L": "listradio", "M": "multiplechoice", "N": "numerical", "T": "longfreetext"}

_SURVEY_SETTINGS: dict[str, str] = {
    "gsid": "1",
    "admin": "Onderzoeksteam POP-evaluatie",
    "adminemail": "onderzoek@example.invalid",
    "anonymized": "N",
    "format": "G",
    "savetimings": "N",
    "template": "fruity_twentythree",
    "datestamp": "Y",
    "usecookie": "N",
    "allowregister": "N",
    "allowsave": "Y",
    "autonumber_start": "0",
    "autoredirect": "N",
    "allowprev": "Y",
    "printanswers": "N",
    "ipaddr": "N",
    "refurl": "N",
    "showsurveypolicynotice": "0",
    "publicstatistics": "N",
    "publicgraphs": "N",
    "listpublic": "N",
    "htmlemail": "Y",
    "sendconfirmation": "N",
    "tokenanswerspersistence": "Y",
    "assessments": "N",
    "usecaptcha": "N",
    "usetokens": "Y",
    "bounce_email": "onderzoek@example.invalid",
    "emailresponseto": "",
    "emailnotificationto": "",
    "tokenlength": "15",
    "showxquestions": "Y",
    "showgroupinfo": "B",
    "shownoanswer": "Y",
    "showqnumcode": "X",
    "bouncetime": "0",
    "bounceprocessing": "N",
    "showwelcome": "Y",
    "showprogress": "Y",
    "questionindex": "0",
    "navigationdelay": "0",
    "nokeyboard": "N",
    "alloweditaftercompletion": "N",
    "googleanalyticsstyle": "0",
    "tokenencryptionoptions": '{"enabled":"Y","columns":{"firstname":"N","lastname":"N","email":"N"}}',
    "ipanonymize": "N",
}


def _table(root: ET.Element, name: str, fields: list[str], rows: Iterable[Mapping[str, object]]) -> None:
    el = ET.SubElement(root, name)
    f = ET.SubElement(el, "fields")
    for n in fields:
        ET.SubElement(f, "fieldname").text = n
    rs = ET.SubElement(el, "rows")
    for r in rows:
        row = ET.SubElement(rs, "row")
        for n in fields:
            v = r.get(n, "")
            ET.SubElement(row, n).text = "" if v is None else str(v)


def build_lss(questionnaire: Questionnaire = QUESTIONNAIRE, *, survey_id: int = DEFAULT_SURVEY_ID) -> bytes:
    """The ``.lss`` document (UTF-8 XML bytes) of ``questionnaire``.

    Parameters
    ----------
    questionnaire
        The questionnaire; its base language becomes the survey language.
    survey_id
        The survey id in the document (LimeSurvey picks another one when it is taken).

    Returns
    -------
    bytes
        The document, ready for ``import_survey(..., 'lss')``.
    """
    if not 10000 <= survey_id <= 999999:
        from survey.errors import ConfigError

        raise ConfigError("Invalid survey id", param="survey_id", expected="a number of 5 or 6 digits", found=str(survey_id))
    langs = [questionnaire.language, *questionnaire.additional_languages]

    root = ET.Element("document")
    ET.SubElement(root, "LimeSurveyDocType").text = "Survey"
    ET.SubElement(root, "DBVersion").text = "630"
    le = ET.SubElement(root, "languages")
    for lang in langs:
        ET.SubElement(le, "language").text = lang

    t = _question_tables(questionnaire, survey_id, langs)

    _table(root, "answers", ["aid", "qid", "code", "sortorder", "assessment_value", "scale_id"], t.answers)
    _table(root, "answer_l10ns", ["id", "aid", "answer", "language"], t.answer_l10ns)
    _table(root, "groups", ["gid", "sid", "group_order", "randomization_group", "grelevance"], t.groups)
    _table(root, "group_l10ns", ["id", "gid", "group_name", "description", "language"], t.group_l10ns)
    qfields = ["qid", "parent_qid", "sid", "gid", "type", "title", "preg", "other", "mandatory", "question_order", "scale_id",
               "same_default", "relevance", "modulename", "encrypted", "question_theme_name", "same_script"]
    _table(root, "questions", qfields, t.questions)
    _table(root, "subquestions", qfields, t.subquestions)
    _table(root, "question_l10ns", ["id", "qid", "question", "help", "language", "script"], t.question_l10ns)
    _table(root, "question_attributes", ["qid", "attribute", "value", "language"], t.attributes)

    attr_desc = {k: {"description": v, "mandatory": "N", "encrypted": "N", "show_register": "N", "cpdbmap": ""}
                 for k, v in questionnaire.attribute_descriptions.items()}
    survey = {"sid": survey_id, "language": questionnaire.language, "additional_languages": " ".join(questionnaire.additional_languages),
              "attributedescriptions": json.dumps(attr_desc, separators=(",", ":")), **_SURVEY_SETTINGS}
    sfields = ["sid", "gsid", "admin", "adminemail", "anonymized", "format", "savetimings", "template", "language", "additional_languages",
               "datestamp", "usecookie", "allowregister", "allowsave", "autonumber_start", "autoredirect", "allowprev", "printanswers",
               "ipaddr", "refurl", "showsurveypolicynotice", "publicstatistics", "publicgraphs", "listpublic", "htmlemail",
               "sendconfirmation", "tokenanswerspersistence", "assessments", "usecaptcha", "usetokens", "bounce_email",
               "attributedescriptions", "emailresponseto", "emailnotificationto", "tokenlength", "showxquestions", "showgroupinfo",
               "shownoanswer", "showqnumcode", "bouncetime", "bounceprocessing", "showwelcome", "showprogress", "questionindex",
               "navigationdelay", "nokeyboard", "alloweditaftercompletion", "googleanalyticsstyle", "tokenencryptionoptions", "ipanonymize"]
    _table(root, "surveys", sfields, [survey])
    captions = json.dumps(dict(questionnaire.attribute_descriptions))
    _table(
        root,
        "surveys_languagesettings",
        ["surveyls_survey_id", "surveyls_language", "surveyls_title", "surveyls_description", "surveyls_welcometext", "surveyls_endtext",
         "surveyls_dateformat", "surveyls_attributecaptions", "surveyls_numberformat"],
        [
            {"surveyls_survey_id": survey_id, "surveyls_language": lang, "surveyls_title": _text(questionnaire.title_nl, questionnaire.title_en, lang),
             "surveyls_description": "", "surveyls_welcometext": _text(questionnaire.welcome_nl, questionnaire.welcome_en, lang),
             "surveyls_endtext": "", "surveyls_dateformat": 2 if lang == "nl" else 6, "surveyls_attributecaptions": captions,
             "surveyls_numberformat": 1 if lang == "nl" else 0}
            for lang in langs
        ],
    )
    ET.indent(root, space=" ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def _question_row(q: Question, qid: int, parent: int, sid: int, gid: int, order: int, qtype: str) -> dict[str, object]:
    return {
        "qid": qid, "parent_qid": parent, "sid": sid, "gid": gid, "type": qtype, "title": q.code, "preg": "",
        "other": "Y" if q.other else "N", "mandatory": "Y" if q.mandatory else "N", "question_order": order, "scale_id": 0,
        "same_default": 0, "relevance": "1", "modulename": "", "encrypted": "N", "question_theme_name": _THEME.get(qtype, ""),
        "same_script": 0,
    }


def fieldmap_from_lss(data: bytes, survey_id: int | None = None, gid_qid: Mapping[int, tuple[int, int]] | None = None) -> dict[str, str]:
    """SGQA column name -> code heading, derived from an ``.lss``.

    Parameters
    ----------
    data
        The ``.lss`` bytes.
    survey_id
        The survey id on the server (default: the one in the document).
    gid_qid
        The server renumbers groups and questions on import; map each document qid to the server's
        ``(gid, qid)`` when they differ.  Without it the document's ids are used.
    """
    root = ET.fromstring(data)

    def rows(table: str) -> list[dict[str, str]]:
        el = root.find(f"{table}/rows")
        return [] if el is None else [{c.tag: (c.text or "") for c in r} for r in el.findall("row")]

    sid = survey_id or int(rows("surveys")[0]["sid"])
    group_order = {r["gid"]: int(r["group_order"]) for r in rows("groups")}
    subs: dict[str, list[dict[str, str]]] = {}
    for r in rows("subquestions"):
        subs.setdefault(r["parent_qid"], []).append(r)
    out: dict[str, str] = {}
    for q in sorted(rows("questions"), key=lambda r: (group_order.get(r["gid"], 0), int(r["question_order"]))):
        gid, qid = (int(q["gid"]), int(q["qid"]))
        if gid_qid and int(q["qid"]) in gid_qid:
            gid, qid = gid_qid[int(q["qid"])]
        base = f"{sid}X{gid}X{qid}"
        if q["qid"] in subs:
            for s in sorted(subs[q["qid"]], key=lambda r: int(r["question_order"])):
                out[base + s["title"]] = f"{q['title']}[{s['title']}]"
        else:
            out[base] = q["title"]
        if q.get("other") == "Y":
            out[base + "other"] = f"{q['title']}[other]"
    return out


def _text(obj_nl: str, obj_en: str, lang: str) -> str:
    return obj_nl if lang == "nl" else obj_en


@dataclass(frozen=True)
class _QuestionTables:
    """The rows of the ``.lss`` tables of groups, questions, answers and their translations."""

    groups: list[dict[str, object]]
    group_l10ns: list[dict[str, object]]
    questions: list[dict[str, object]]
    subquestions: list[dict[str, object]]
    question_l10ns: list[dict[str, object]]
    answers: list[dict[str, object]]
    answer_l10ns: list[dict[str, object]]
    attributes: list[dict[str, object]]


def _question_tables(questionnaire: Questionnaire, survey_id: int, langs: list[str]) -> _QuestionTables:
    """Groups, questions, subquestions, answers (each in every language) and question attributes, numbered as LimeSurvey does."""
    groups: list[dict[str, object]] = []
    group_l10ns: list[dict[str, object]] = []
    questions: list[dict[str, object]] = []
    subquestions: list[dict[str, object]] = []
    question_l10ns: list[dict[str, object]] = []
    answers: list[dict[str, object]] = []
    answer_l10ns: list[dict[str, object]] = []
    attributes: list[dict[str, object]] = []
    qid, sqid, aid, l10n = 1000, 5000, 90000, 1
    for gi, g in enumerate(questionnaire.groups):
        gid = 10 + gi
        groups.append({"gid": gid, "sid": survey_id, "group_order": gi, "randomization_group": "", "grelevance": "1"})
        for lang in langs:
            group_l10ns.append({"id": len(group_l10ns) + 1, "gid": gid, "group_name": _text(g.nl, g.en, lang), "description": "", "language": lang})
        for qi, q in enumerate(g.questions):
            qid += 1
            questions.append(_question_row(q, qid, 0, survey_id, gid, qi, q.qtype))
            for lang in langs:
                question_l10ns.append(
                    {"id": l10n, "qid": qid, "question": _text(q.nl, q.en, lang), "help": _text(q.help_nl, q.help_en, lang), "language": lang, "script": ""}
                )
                l10n += 1
            for si, sq in enumerate(q.subquestions):
                sqid += 1
                sub = _question_row(q, sqid, qid, survey_id, gid, si, q.qtype)
                sub.update({"title": sq.code, "other": "N", "mandatory": "", "question_theme_name": ""})
                subquestions.append(sub)
                for lang in langs:
                    question_l10ns.append({"id": l10n, "qid": sqid, "question": _text(sq.nl, sq.en, lang), "help": "", "language": lang, "script": ""})
                    l10n += 1
            for ai, a in enumerate(q.answers):
                aid += 1
                answers.append({"aid": aid, "qid": qid, "code": a.code, "sortorder": ai, "assessment_value": 0, "scale_id": 0})
                for lang in langs:
                    answer_l10ns.append({"id": len(answer_l10ns) + 1, "aid": aid, "answer": _text(a.nl, a.en, lang), "language": lang})
            if q.qtype == "N":
                for name, v in (("min_num_value_n", q.min), ("max_num_value_n", q.max)):
                    if v is not None:
                        attributes.append({"qid": qid, "attribute": name, "value": f"{v:g}", "language": ""})
            if q.qtype == "T":
                attributes.append({"qid": qid, "attribute": "display_rows", "value": "5", "language": ""})
    return _QuestionTables(
        groups=groups,
        group_l10ns=group_l10ns,
        questions=questions,
        subquestions=subquestions,
        question_l10ns=question_l10ns,
        answers=answers,
        answer_l10ns=answer_l10ns,
        attributes=attributes,
    )
