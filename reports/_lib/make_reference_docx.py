"""Build ``reference.docx``, the DOCX house style of the report, from pandoc's default reference document.

Run ``python reports/_lib/make_reference_docx.py`` after changing a style here; the result is
committed beside this script and wired into both engines by ``_quarto.yml`` (``reference-doc``).

What it sets: A4 with 2.2 cm margins; the report's typeface (DejaVu Sans, as the figures) and
colours; heading, caption, table and TOC styles; paragraph styles ``Source`` (source lines and
table notes), ``Callout`` (notices), ``Colofon`` and ``Group Row`` (a table's group label, kept
with the next row); a header with the publisher and a footer
with the page number; automatic hyphenation in the text's language (Dutch unless pandoc's ``lang``
says otherwise).
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
FONT = "DejaVu Sans"
INK = "1D2B3A"
MUTED = "5D6874"
ACCENT = "B08A00"
PUBLISHER = "Departement Werk en Sociale Economie"
#: the default language of the text (pandoc replaces it by the report's ``lang``: nl-BE or en-GB)
LANG = "nl-BE"


def _rpr(size_half_points: int | None = None, color: str | None = None, bold: bool = False, italic: bool = False) -> str:
    out = f'<w:rFonts w:ascii="{FONT}" w:hAnsi="{FONT}" w:eastAsia="{FONT}" w:cs="{FONT}"/>'
    if bold:
        out += "<w:b/><w:bCs/>"
    if italic:
        out += "<w:i/><w:iCs/>"
    if color:
        out += f'<w:color w:val="{color}"/>'
    if size_half_points:
        out += f'<w:sz w:val="{size_half_points}"/><w:szCs w:val="{size_half_points}"/>'
    return f"<w:rPr>{out}</w:rPr>"


def _style(style_id: str, name: str, *, based: str = "Normal", ppr: str = "", rpr: str = "", kind: str = "paragraph") -> str:
    return f'<w:style w:type="{kind}" w:customStyle="1" w:styleId="{style_id}"><w:name w:val="{name}"/><w:basedOn w:val="{based}"/><w:qFormat/><w:pPr>{ppr}</w:pPr>{rpr}</w:style>'


def _replace_style(styles: str, style_id: str, new: str) -> str:
    pattern = re.compile(rf'<w:style [^>]*w:styleId="{style_id}"[^>]*>.*?</w:style>', flags=re.S)
    if pattern.search(styles):
        return pattern.sub(lambda _m: new, styles, count=1)
    return styles.replace("</w:styles>", new + "</w:styles>")


def build(out: Path) -> Path:
    """Write the reference document to ``out``."""
    import pypandoc

    default = subprocess.run([pypandoc.get_pandoc_path(), "--print-default-data-file", "reference.docx"], capture_output=True, check=True).stdout
    tmp = out.with_suffix(".default.docx")
    tmp.write_bytes(default)
    with zipfile.ZipFile(tmp) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    tmp.unlink()
    styles = parts["word/styles.xml"].decode("utf-8")
    # defaults: the report's font, 9.5 pt, ink colour, and a language (pandoc sets it to the report's),
    # so that Word hyphenates with that language's rules
    rpr_default = _rpr(19, INK).replace("</w:rPr>", f'<w:lang w:val="{LANG}" w:eastAsia="en-US" w:bidi="ar-SA"/></w:rPr>')
    styles = re.sub(r"<w:rPrDefault>.*?</w:rPrDefault>", f"<w:rPrDefault>{rpr_default}</w:rPrDefault>", styles, flags=re.S)
    body = '<w:spacing w:before="0" w:after="120" w:line="264" w:lineRule="auto"/>'
    styles = _replace_style(styles, "Normal", f'<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/><w:qFormat/><w:pPr>{body}</w:pPr>{_rpr(19, INK)}</w:style>')
    for sid, name in (("BodyText", "Body Text"), ("FirstParagraph", "First Paragraph"), ("Compact", "Compact")):
        after = "40" if sid == "Compact" else "120"
        styles = _replace_style(styles, sid, f'<w:style w:type="paragraph" w:styleId="{sid}"><w:name w:val="{name}"/><w:basedOn w:val="Normal"/><w:qFormat/><w:pPr><w:spacing w:before="0" w:after="{after}"/></w:pPr></w:style>')
    heads = {1: (30, INK, 360, 160), 2: (23, INK, 240, 100), 3: (20, INK, 200, 80)}
    for level, (size, color, before, after) in heads.items():
        border = f'<w:pBdr><w:bottom w:val="single" w:sz="10" w:space="2" w:color="{INK}"/></w:pBdr>' if level == 1 else ""
        ppr = f'<w:keepNext/><w:keepLines/>{border}<w:spacing w:before="{before}" w:after="{after}"/><w:outlineLvl w:val="{level - 1}"/>'
        styles = _replace_style(styles, f"Heading{level}", f'<w:style w:type="paragraph" w:styleId="Heading{level}"><w:name w:val="heading {level}"/><w:basedOn w:val="Normal"/><w:next w:val="BodyText"/><w:uiPriority w:val="9"/><w:qFormat/><w:pPr>{ppr}</w:pPr>{_rpr(size, color, bold=True)}</w:style>')
    styles = _replace_style(styles, "Title", f'<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/><w:basedOn w:val="Normal"/><w:next w:val="BodyText"/><w:qFormat/><w:pPr><w:pBdr><w:top w:val="single" w:sz="48" w:space="12" w:color="FFE615"/></w:pBdr><w:spacing w:before="240" w:after="120"/></w:pPr>{_rpr(44, INK, bold=True)}</w:style>')
    styles = _replace_style(styles, "Subtitle", f'<w:style w:type="paragraph" w:styleId="Subtitle"><w:name w:val="Subtitle"/><w:basedOn w:val="Title"/><w:next w:val="BodyText"/><w:qFormat/><w:pPr><w:pBdr/><w:spacing w:before="0" w:after="120"/></w:pPr>{_rpr(26, MUTED)}</w:style>')
    styles = _replace_style(styles, "Author", f'<w:style w:type="paragraph" w:styleId="Author"><w:name w:val="Author"/><w:basedOn w:val="Normal"/><w:next w:val="BodyText"/><w:qFormat/><w:pPr><w:spacing w:after="40"/></w:pPr>{_rpr(17, MUTED, bold=True)}</w:style>')
    styles = _replace_style(styles, "Date", f'<w:style w:type="paragraph" w:styleId="Date"><w:name w:val="Date"/><w:basedOn w:val="Normal"/><w:next w:val="BodyText"/><w:qFormat/><w:pPr><w:spacing w:after="240"/></w:pPr>{_rpr(18, MUTED)}</w:style>')
    # captions: tables above (keep with the table), figures below
    styles = _replace_style(styles, "Caption", f'<w:style w:type="paragraph" w:styleId="Caption"><w:name w:val="caption"/><w:basedOn w:val="Normal"/><w:qFormat/><w:pPr><w:spacing w:before="120" w:after="80"/></w:pPr>{_rpr(18, INK, bold=True)}</w:style>')
    styles = _replace_style(styles, "TableCaption", '<w:style w:type="paragraph" w:styleId="TableCaption"><w:name w:val="Table Caption"/><w:basedOn w:val="Caption"/><w:qFormat/><w:pPr><w:keepNext/><w:spacing w:before="200" w:after="80"/></w:pPr></w:style>')
    styles = _replace_style(styles, "ImageCaption", '<w:style w:type="paragraph" w:styleId="ImageCaption"><w:name w:val="Image Caption"/><w:basedOn w:val="Caption"/><w:qFormat/><w:pPr><w:keepNext/><w:spacing w:before="60" w:after="60"/></w:pPr></w:style>')
    styles = _replace_style(styles, "CaptionedFigure", '<w:style w:type="paragraph" w:styleId="CaptionedFigure"><w:name w:val="Captioned Figure"/><w:basedOn w:val="Normal"/><w:qFormat/><w:pPr><w:keepNext/><w:spacing w:before="160" w:after="0"/></w:pPr></w:style>')
    styles = _replace_style(styles, "Source", _style("Source", "Source", ppr='<w:spacing w:before="60" w:after="200"/>', rpr=_rpr(15, MUTED)))
    styles = _replace_style(styles, "Callout", _style("Callout", "Callout", ppr=f'<w:pBdr><w:left w:val="single" w:sz="24" w:space="8" w:color="{ACCENT}"/></w:pBdr><w:shd w:val="clear" w:color="auto" w:fill="F4F5F6"/><w:spacing w:before="60" w:after="60"/><w:ind w:left="200" w:right="200"/>', rpr=_rpr(18, INK)))
    # a table's group row (a label above its rows): kept with the next row, so no page ends with it
    styles = _replace_style(styles, "GroupRow", _style("GroupRow", "Group Row", based="Compact", ppr='<w:keepNext/><w:spacing w:before="40" w:after="20"/>', rpr=_rpr(16, INK, bold=True)))
    styles = _replace_style(styles, "Colofon", _style("Colofon", "Colofon", ppr='<w:spacing w:before="0" w:after="80"/>', rpr=_rpr(17, INK)))
    styles = _replace_style(styles, "TOCHeading", f'<w:style w:type="paragraph" w:styleId="TOCHeading"><w:name w:val="TOC Heading"/><w:basedOn w:val="Heading1"/><w:next w:val="BodyText"/><w:uiPriority w:val="39"/><w:unhideWhenUsed/><w:qFormat/><w:pPr><w:outlineLvl w:val="9"/></w:pPr>{_rpr(26, INK, bold=True)}</w:style>')
    # tables: rules above and below the header and at the end, 8 pt text
    table = (
        '<w:style w:type="table" w:default="1" w:styleId="Table"><w:name w:val="Table"/><w:basedOn w:val="TableNormal"/><w:uiPriority w:val="59"/><w:qFormat/>'
        f'<w:pPr><w:spacing w:before="20" w:after="20"/></w:pPr>{_rpr(16, INK)}'
        f'<w:tblPr><w:tblW w:w="5000" w:type="pct"/><w:tblBorders><w:top w:val="single" w:sz="8" w:space="0" w:color="{INK}"/><w:bottom w:val="single" w:sz="8" w:space="0" w:color="{INK}"/><w:insideH w:val="single" w:sz="2" w:space="0" w:color="D5D9DE"/></w:tblBorders>'
        '<w:tblCellMar><w:left w:w="80" w:type="dxa"/><w:right w:w="80" w:type="dxa"/></w:tblCellMar></w:tblPr>'
        f'<w:tblStylePr w:type="firstRow"><w:rPr><w:b/></w:rPr><w:tcPr><w:tcBorders><w:bottom w:val="single" w:sz="6" w:space="0" w:color="{INK}"/></w:tcBorders></w:tcPr></w:tblStylePr>'
        "</w:style>"
    )
    styles = _replace_style(styles, "Table", table)
    styles = _replace_style(styles, "Hyperlink", '<w:style w:type="character" w:styleId="Hyperlink"><w:name w:val="Hyperlink"/><w:basedOn w:val="BodyTextChar"/><w:rPr><w:color w:val="0B5CAD"/></w:rPr></w:style>')
    parts["word/styles.xml"] = styles.encode("utf-8")

    # automatic hyphenation: a long word in a narrow column (a column name such as
    # "Respondenten") is hyphenated instead of running past its cell or breaking at any letter
    settings = parts["word/settings.xml"].decode("utf-8")
    settings = re.sub(r"<w:(autoHyphenation|consecutiveHyphenLimit|hyphenationZone)\b[^>]*/>", "", settings)
    hyphenation = '<w:autoHyphenation w:val="true"/><w:consecutiveHyphenLimit w:val="2"/><w:hyphenationZone w:val="284"/>'
    settings = re.sub(r"(<w:defaultTabStop\b[^>]*/>)", lambda m: m.group(1) + hyphenation, settings, count=1)
    if "<w:autoHyphenation" not in settings:
        raise RuntimeError("pandoc's reference settings.xml has no defaultTabStop to place the hyphenation after")
    parts["word/settings.xml"] = settings.encode("utf-8")

    # header (publisher) and footer (page number)
    ns = f'xmlns:w="{W}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    parts["word/header1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:hdr {ns}><w:p><w:pPr><w:pBdr><w:bottom w:val="single" w:sz="4" w:space="2" w:color="{MUTED}"/></w:pBdr></w:pPr>'
        f"<w:r>{_rpr(15, MUTED)}<w:t>{PUBLISHER}</w:t></w:r></w:p></w:hdr>"
    ).encode()
    parts["word/footer1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:ftr {ns}><w:p><w:pPr><w:jc w:val="right"/></w:pPr>'
        f'<w:r>{_rpr(15, MUTED)}<w:fldChar w:fldCharType="begin"/></w:r><w:r>{_rpr(15, MUTED)}<w:instrText xml:space="preserve"> PAGE </w:instrText></w:r>'
        f'<w:r>{_rpr(15, MUTED)}<w:fldChar w:fldCharType="separate"/></w:r><w:r>{_rpr(15, MUTED)}<w:t>1</w:t></w:r><w:r>{_rpr(15, MUTED)}<w:fldChar w:fldCharType="end"/></w:r></w:p></w:ftr>'
    ).encode()
    rels = parts["word/_rels/document.xml.rels"].decode("utf-8")
    rels = rels.replace(
        "</Relationships>",
        '<Relationship Id="rIdPopevalHeader" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/header" Target="header1.xml"/>'
        '<Relationship Id="rIdPopevalFooter" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer" Target="footer1.xml"/></Relationships>',
    )
    parts["word/_rels/document.xml.rels"] = rels.encode("utf-8")
    ct = parts["[Content_Types].xml"].decode("utf-8")
    ct = ct.replace(
        "</Types>",
        '<Override PartName="/word/header1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.header+xml"/>'
        '<Override PartName="/word/footer1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"/></Types>',
    )
    parts["[Content_Types].xml"] = ct.encode("utf-8")
    doc = parts["word/document.xml"].decode("utf-8")
    sect = (
        '<w:sectPr><w:headerReference w:type="default" r:id="rIdPopevalHeader"/><w:footerReference w:type="default" r:id="rIdPopevalFooter"/>'
        '<w:pgSz w:w="11906" w:h="16838"/><w:pgMar w:top="1361" w:right="1247" w:bottom="1247" w:left="1247" w:header="624" w:footer="567" w:gutter="0"/></w:sectPr>'
    )
    doc = re.sub(r"<w:sectPr[^>]*>.*?</w:sectPr>", sect, doc, flags=re.S) if "<w:sectPr" in doc else doc.replace("</w:body>", sect + "</w:body>")
    if 'xmlns:r="' not in doc[:2000]:
        doc = doc.replace("<w:document ", '<w:document xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" ', 1)
    parts["word/document.xml"] = doc.encode("utf-8")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(parts, key=lambda n: (n != "[Content_Types].xml", n)):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, parts[name])
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("reference.docx")
    print(build(target))
