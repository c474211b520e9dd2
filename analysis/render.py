"""Render the Quarto report to HTML, PDF and DOCX, with Quarto or with the engines Quarto uses.

When a ``quarto`` binary is on PATH, :func:`render_report` runs ``quarto render`` with ``-P``
parameters.  Otherwise it runs the same ``.qmd`` through Quarto's engines itself:

1. **jupytext** reads the ``.qmd`` (its ```` ```{python} ```` chunks are R Markdown chunks) into a notebook;
2. the parameters cell (``#| tags: [parameters]``) is followed by an injected cell that sets the
   ``-P`` values, as Quarto (papermill-style) does;
3. **nbclient** + **ipykernel** execute the code cells in a build folder;
4. the outputs become Markdown, honouring the cell options ``echo``, ``output: asis``, ``include``,
   ``label`` and ``fig-cap`` (matplotlib figures become PNG files);
5. **pandoc** (pypandoc-binary's bundled binary) writes a self-contained HTML file
   (``--embed-resources --standalone``, the report's stylesheet) and a DOCX file (with
   ``reports/_lib/reference.docx`` when present), and Typst markup that **typst** (PyPI) compiles to
   PDF with the report's Typst template (``reports/_lib/dwse.typ``).

The title block (title, subtitle, publisher, date of the run) comes from :mod:`analysis.report`
and the bundle's manifest, in the report's language.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survey.errors import ConfigError, PopevalError

__all__ = ["FORMATS", "RenderError", "RenderResult", "default_qmd", "parse_param", "render_report"]

#: Output formats and file suffixes.
FORMATS = {"html": ".html", "pdf": ".pdf", "docx": ".docx"}


class RenderError(PopevalError):
    """Rendering the report failed (a code cell raised, or pandoc/typst/quarto failed)."""


@dataclass(frozen=True)
class RenderResult:
    """What a render produced."""

    outputs: Mapping[str, Path]
    engine: str
    markdown: Path | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per output file."""
        lines = [f"Rendered with {self.engine}:"] + [f"  {fmt:<5} {path}" for fmt, path in self.outputs.items()]
        return "\n".join(lines)


def default_qmd() -> Path:
    """The evaluation report's source: ``reports/evaluation.qmd`` beside the packages."""
    return Path(__file__).resolve().parents[1] / "reports" / "evaluation.qmd"


def parse_param(text: str) -> tuple[str, Any]:
    """Parse a ``-P`` parameter, ``name=value`` or ``name:value`` (value as YAML/JSON scalar).

    Raises
    ------
    ConfigError
        When there is no name.
    """
    m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(.*)$", text, flags=re.S)
    if not m:
        raise ConfigError("Invalid report parameter", param=text, expected="name=value (or name:value)", found=repr(text), hint="e.g. -P threshold=10")
    name, raw = m.group(1), m.group(2).strip()
    import yaml

    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, dict | list):
        value = raw
    return name, value


# ====================================================================== public entry point
def render_report(
    bundle: str | Path,
    *,
    lang: str = "nl",
    out: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    formats: Sequence[str] = ("html", "pdf", "docx"),
    qmd: str | Path | None = None,
    engine: str = "auto",
    timeout: int = 600,
) -> RenderResult:
    """Render the report of a results bundle.

    Parameters
    ----------
    bundle
        The results bundle folder.
    lang
        ``'nl'`` or ``'en'``.
    out
        Output folder (default ``reports/_output``); files are named ``evaluation-<lang>.<ext>``.
    params
        Extra report parameters (as ``-P``), e.g. ``{"threshold": 10}``.
    formats
        Any of ``html``, ``pdf``, ``docx``.
    qmd
        The report source (default :func:`default_qmd`).
    engine
        ``'auto'`` (Quarto when on PATH, else the fallback), ``'quarto'`` or ``'python'``.
    timeout
        Seconds allowed per code cell.

    Returns
    -------
    RenderResult

    Raises
    ------
    ConfigError
        For an unknown language, format or engine, or a missing bundle/source.
    RenderError
        When a cell, pandoc, typst or quarto fails.
    """
    from analysis.bundle import read_bundle
    from analysis.formatting import check_lang

    check_lang(lang)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError("Unknown output format", param="formats", expected=", ".join(FORMATS), found=", ".join(bad) or "none")
    if engine not in ("auto", "quarto", "python"):
        raise ConfigError("Unknown render engine", param="engine", expected="auto, quarto or python", found=engine)
    qmd = Path(qmd) if qmd is not None else default_qmd()
    if not qmd.is_file():
        raise ConfigError("Report source not found", file=qmd, expected="a .qmd file", hint="run from the repository, or pass --qmd")
    bundle = Path(bundle).resolve()
    manifest = read_bundle(bundle).manifest  # validates the bundle before any work
    out = Path(out) if out is not None else qmd.parent / "_output"
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    all_params: dict[str, Any] = {**dict(params or {}), "bundle": str(bundle), "lang": lang}
    meta = title_metadata(manifest, lang)
    use_quarto = engine == "quarto" or (engine == "auto" and shutil.which("quarto") is not None)
    if use_quarto:
        return _render_quarto(qmd, out, all_params, formats, meta, lang)
    return _render_python(qmd, out, all_params, formats, meta, lang, timeout)


def title_metadata(manifest: Mapping[str, Any], lang: str) -> dict[str, str]:
    """Title block metadata in ``lang``: title, subtitle, author (publisher), date, lang."""
    from analysis.formatting import fmt_date
    from analysis.report import t

    when = manifest.get("created_at") or manifest.get("run_at")
    meta = {
        "title": t("title", lang),
        "subtitle": t("subtitle", lang),
        "author": t("publisher", lang),
        "lang": "nl-BE" if lang == "nl" else "en-GB",
        "pagetitle": t("title", lang),
    }
    if when:
        meta["date"] = fmt_date(str(when)[:10], lang)
    return meta


# ====================================================================== quarto
def _render_quarto(qmd: Path, out: Path, params: Mapping[str, Any], formats: Sequence[str], meta: Mapping[str, str], lang: str) -> RenderResult:
    to = {"html": "html", "pdf": "typst", "docx": "docx"}
    outputs: dict[str, Path] = {}
    for fmt in formats:
        name = f"evaluation-{lang}{FORMATS[fmt]}"
        cmd = ["quarto", "render", str(qmd), "--to", to[fmt], "--output", name, "--output-dir", str(out)]
        for k, v in params.items():
            cmd += ["-P", f"{k}:{v}"]
        for k, v in meta.items():
            cmd += ["-M", f"{k}:{v}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=qmd.parent)
        if proc.returncode != 0:
            raise RenderError("quarto render failed", file=qmd, found=f"exit status {proc.returncode}", detail=proc.stderr[-4000:])
        outputs[fmt] = out / name
    return RenderResult(outputs=outputs, engine="quarto", params=dict(params))


# ====================================================================== the fallback engine
def _cell_options(source: str) -> tuple[dict[str, Any], str]:
    """Quarto ``#|`` options at the top of a cell, and the remaining code."""
    import yaml

    lines = source.splitlines()
    opts_lines = []
    i = 0
    while i < len(lines) and lines[i].startswith("#|"):
        opts_lines.append(lines[i][2:].strip())
        i += 1
    opts: dict[str, Any] = {}
    if opts_lines:
        try:
            opts = yaml.safe_load("\n".join(opts_lines)) or {}
        except yaml.YAMLError as exc:
            raise RenderError("Invalid cell options", expected="YAML after '#|'", found="\n".join(opts_lines)) from exc
    return opts, "\n".join(lines[i:])


def _front_matter(nb: Any) -> tuple[dict[str, Any], str]:
    import yaml

    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.startswith("---"):
        text = nb.cells[0].source
        body = text.strip().strip("-").strip()
        return (yaml.safe_load(body) or {}), text
    return {}, ""


def _injected_source(params: Mapping[str, Any]) -> str:
    lines = ["# injected parameters"]
    lines += [f"{k} = {v!r}" for k, v in params.items()]
    return "\n".join(lines)


def _execute(qmd: Path, build: Path, params: Mapping[str, Any], timeout: int) -> tuple[str, dict[str, Any]]:
    """Execute the .qmd's code cells in ``build`` and return the Markdown document and its front matter."""
    import base64
    import os

    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = jupytext.reads(qmd.read_text(encoding="utf-8"), fmt="Rmd")
    front, front_text = _front_matter(nb)
    defaults = (front.get("execute") or {}) if isinstance(front, dict) else {}
    # parse options; inject parameters after the parameters cell
    cells = []
    injected = False
    for cell in nb.cells[1:] if front_text else nb.cells:
        if cell.cell_type == "code":
            opts, _ = _cell_options(cell.source)
            cell.metadata["quarto"] = opts
            cells.append(cell)
            if "parameters" in (opts.get("tags") or []) and not injected:
                new = nbformat.v4.new_code_cell(_injected_source(params))
                new.metadata["quarto"] = {"echo": False, "include": False}
                cells.append(new)
                injected = True
        else:
            cells.append(cell)
    if not injected:
        new = nbformat.v4.new_code_cell(_injected_source(params))
        new.metadata["quarto"] = {"echo": False, "include": False}
        cells.insert(0, new)
    # as Quarto's setup cell: figures shown by a cell come back as PNG display data
    setup = nbformat.v4.new_code_cell("%matplotlib inline")
    setup.metadata["quarto"] = {"echo": False, "include": False}
    nb.cells = [setup, *cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    repo = str(Path(__file__).resolve().parents[1])
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = repo + (os.pathsep + env_path if env_path else "")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(build)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        raise RenderError("A code cell of the report failed", file=qmd, detail=str(exc)[-4000:], hint="the traceback above names the cell; check the bundle") from exc
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            os.environ.pop("PYTHONPATH", None)

    parts: list[str] = [front_text] if front_text else []
    nfig = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        opts = cell.metadata.get("quarto", {})
        if not opts.get("include", defaults.get("include", True)):
            continue
        _, code = _cell_options(cell.source)
        if opts.get("echo", defaults.get("echo", True)) and code.strip():
            parts.append(f"```python\n{code}\n```")
        asis = opts.get("output", defaults.get("output")) == "asis"
        if opts.get("output", True) is False:
            continue
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                if output.get("name") == "stderr":
                    continue
                text = output.get("text", "")
                parts.append(text if asis else f"```\n{text.rstrip()}\n```")
            elif kind in ("display_data", "execute_result"):
                data = output.get("data", {})
                if "image/png" in data:
                    nfig += 1
                    label = opts.get("label") or f"fig-cell-{nfig}"
                    path = build / "_figures" / f"{label}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base64.b64decode(data["image/png"]))
                    cap = opts.get("fig-cap", "")
                    parts.append(f"![{cap}]({path.relative_to(build).as_posix()}){{#{label} width=100%}}")
                elif "text/markdown" in data:
                    parts.append(data["text/markdown"])
                elif "text/plain" in data and not asis:
                    parts.append(f"```\n{data['text/plain']}\n```")
                elif "text/plain" in data:
                    parts.append(data["text/plain"])
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n", front


def _pandoc(args: Sequence[str], cwd: Path) -> None:
    import pypandoc

    exe = pypandoc.get_pandoc_path()
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False, cwd=cwd)
    if proc.returncode != 0:
        raise RenderError("pandoc failed", found=f"exit status {proc.returncode}", detail=proc.stderr[-4000:], hint=" ".join(args[:6]))


def _meta_args(meta: Mapping[str, str]) -> list[str]:
    args = []
    for k, v in meta.items():
        args += ["-M", f"{k}={v}"]
    return args


def _render_python(qmd: Path, out: Path, params: Mapping[str, Any], formats: Sequence[str], meta: Mapping[str, str], lang: str, timeout: int) -> RenderResult:
    from survey.files import atomic_write  # every output file appears complete or not at all

    lib = qmd.parent / "_lib"
    build = out / f"_build-{lang}"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    md_text, front = _execute(qmd, build, params, timeout)
    md = build / f"evaluation-{lang}.md"
    md.write_text(md_text, encoding="utf-8")
    outputs: dict[str, Path] = {}
    common = ["-f", "markdown-implicit_figures+implicit_figures", *_meta_args(meta), "--resource-path", f"{build}:{qmd.parent}", "--columns", "400"]
    if "html" in formats:
        target = out / f"evaluation-{lang}.html"
        css = lib / "dwse.css"
        with atomic_write(target, None) as tmp:
            args = [md.name, *common, "-t", "html5", "--standalone", "--embed-resources", "--number-sections", "--toc", "--toc-depth=2", "-o", str(tmp)]
            if css.is_file():
                args += ["--css", str(css)]
            args += ["-M", f"toc-title={'Inhoud' if lang == 'nl' else 'Contents'}"]
            _pandoc(args, build)
        outputs["html"] = target
    if "docx" in formats:
        target = out / f"evaluation-{lang}.docx"
        with atomic_write(target, None) as tmp:
            args = [md.name, *common, "-t", "docx", "--number-sections", "-o", str(tmp)]
            ref = lib / "reference.docx"
            if ref.is_file():
                args += ["--reference-doc", str(ref)]
            _pandoc(args, build)
        outputs["docx"] = target
    if "pdf" in formats:
        import typst

        target = out / f"evaluation-{lang}.pdf"
        typ = build / f"evaluation-{lang}.typ"
        args = [md.name, *common, "-t", "typst", "--standalone", "--number-sections", "-V", "section-numbering=1.1", "-V", "papersize=a4", "-o", str(typ)]
        template = lib / "dwse.typ"
        if template.is_file():
            shutil.copyfile(template, build / "dwse.typ")
            args += ["-V", "template=dwse.typ"]
        _pandoc(args, build)
        try:
            with atomic_write(target, None) as tmp:
                typst.compile(str(typ), output=str(tmp), root=str(build))
        except Exception as exc:  # typst raises its own error types
            raise RenderError("typst failed to compile the PDF", file=typ, detail=str(exc)[-4000:]) from exc
        outputs["pdf"] = target
    with atomic_write(out / f"evaluation-{lang}.params.json") as fh:
        fh.write(json.dumps(dict(params), indent=2, sort_keys=True, default=str) + "\n")
    _ = front
    return RenderResult(outputs=outputs, engine="python (jupytext + nbclient + pandoc + typst)", markdown=md, params=dict(params))
