"""Render the Quarto report to HTML, PDF and DOCX, with Quarto or with the engines Quarto uses.

The report is ``reports/evaluation-<lang>.qmd`` (one file per language) with shared include files;
``reports/_quarto.yml`` wires in the stylesheet, the Typst template, the reference DOCX and the Lua
filter ``reports/_lib/popeval.lua``.  When a ``quarto`` binary is on PATH, :func:`render_report`
runs ``quarto render`` with ``-P`` parameters.  Otherwise it runs the same files through Quarto's
engines itself, supporting exactly the subset of Quarto the report uses:

1. ``{{< include file >}}`` lines are expanded (recursively, relative to the including file);
2. **jupytext** reads the result into a notebook (```` ```{python} ```` chunks, ``#|`` options);
3. the parameters cell (``#| tags: [parameters]``) is followed by an injected cell with the ``-P``
   values, as Quarto (papermill-style) does;
4. inline expressions (```` `{python} expr` ````) become hidden cells placed before their paragraph;
5. **nbclient** + **ipykernel** execute the cells in a build folder (IPC transport; the kernel's own
   log goes to ``kernel.log`` there, not to the console);
6. outputs become Markdown honouring ``echo``, ``include``, ``output`` (``asis``), ``label``,
   ``tbl-cap``, ``fig-cap`` and ``fig-alt``: a ``tbl-`` cell is a ``::: {#tbl-...}`` div with its
   caption, a ``fig-`` cell an image ``{#fig-...}``;
7. **pandoc** (pypandoc-binary) with the Lua filter — which numbers tables and figures and resolves
   ``@tbl-``/``@fig-`` references, renders callouts and ``content-visible when-meta`` blocks, as
   Quarto does — writes HTML and DOCX, and Typst markup that **typst** (PyPI) compiles to PDF.

The title block (title, subtitle, publisher, date) comes from :mod:`analysis.report.labels` and the run's
time, in the report's language, and is passed to both engines as metadata.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
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


def default_qmd(lang: str = "nl") -> Path:
    """The evaluation report's source in ``lang``: ``reports/evaluation-<lang>.qmd`` beside the packages."""
    return Path(__file__).resolve().parents[2] / "reports" / f"evaluation-{lang}.qmd"


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
    if isinstance(value, dict | list) or not isinstance(value, str | int | float | bool | type(None)):
        value = raw  # dates and structures stay text, as Quarto passes them
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
    from analysis.report.formatting import check_lang

    check_lang(lang)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError("Unknown output format", param="formats", expected=", ".join(FORMATS), found=", ".join(bad) or "none")
    if engine not in ("auto", "quarto", "python"):
        raise ConfigError("Unknown render engine", param="engine", expected="auto, quarto or python", found=engine)
    qmd = Path(qmd) if qmd is not None else default_qmd(lang)
    if not qmd.is_file():
        raise ConfigError("Report source not found", file=qmd, expected="a .qmd file", hint="run from the repository, or pass --qmd")
    bundle = Path(bundle).resolve()
    manifest = read_bundle(bundle).manifest  # validates the bundle before any work
    out = Path(out) if out is not None else qmd.parent / "_output"
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    all_params: dict[str, Any] = {**dict(params or {}), "bundle": str(bundle), "lang": lang}
    if not all_params.get("run_time"):
        from datetime import UTC, datetime

        all_params["run_time"] = str(manifest.get("created_at") or datetime.now(UTC).replace(microsecond=0).isoformat())
    meta = title_metadata(manifest, lang, run_time=str(all_params["run_time"]))
    meta.update(bundle_metadata(bundle))
    plans = all_params.get("plans_bundle")
    if plans:
        plans = str(Path(str(plans)).resolve())
        read_bundle(plans)  # a plans bundle is verified against its manifest like the run bundle
        all_params["plans_bundle"] = plans
    if plans or any(t.startswith("plans_") for t in read_bundle(bundle).tables):
        meta["popeval-plans"] = "true"
    use_quarto = engine == "quarto" or (engine == "auto" and shutil.which("quarto") is not None)
    if use_quarto:
        return _render_quarto(qmd, out, all_params, formats, meta, lang)
    return _render_python(qmd, out, all_params, formats, meta, lang, timeout)


def title_metadata(manifest: Mapping[str, Any], lang: str, run_time: str | None = None) -> dict[str, str]:
    """Title block metadata in ``lang``: title, subtitle, author (publisher), date, lang."""
    from analysis.report.formatting import fmt_date
    from analysis.report.labels import label

    when = run_time or manifest.get("created_at") or manifest.get("run_at")
    meta = {
        "title": label("title", lang),
        "subtitle": label("subtitle", lang),
        "author": label("publisher", lang),
        "lang": "nl-BE" if lang == "nl" else "en-GB",
        "pagetitle": label("title", lang),
        "toc-title": label("toc", lang),
    }
    if when:
        meta["date"] = fmt_date(str(when)[:10], lang)
    return meta


def bundle_metadata(bundle: str | Path) -> dict[str, str]:
    """``popeval.*`` metadata for ``content-visible when-meta`` blocks: which optional parts the bundle has."""
    from analysis.report.builder import Report

    r = Report(bundle)
    flags = {"demo": r.is_demo, "estimand": r.has("estimand"), "overlap": r.has("overlap"), "response-detail": r.has("response_detail"), "suppressed": r.has("suppressed"), "not-estimable": r.has("not_estimable")}
    verdicts = set(r.verdicts().values())
    flags.update({v.replace("_", "-"): v in verdicts for v in ("consistent", "main_only", "inconclusive", "none", "lower")})
    return {f"popeval-{k}": "true" for k, v in flags.items() if v}


# ====================================================================== quarto
def _render_quarto(qmd: Path, out: Path, params: Mapping[str, Any], formats: Sequence[str], meta: Mapping[str, str], lang: str) -> RenderResult:
    import os
    import tempfile

    to = {"html": "html", "pdf": "typst", "docx": "docx"}
    outputs: dict[str, Path] = {}
    for fmt in formats:
        name = f"evaluation-{lang}{FORMATS[fmt]}"
        # quarto writes into a temporary folder; the finished file is renamed into place (atomic)
        with tempfile.TemporaryDirectory(dir=out, prefix=".popeval-tmp-") as tmp:
            cmd = ["quarto", "render", str(qmd), "--to", to[fmt], "--output", name, "--output-dir", tmp]
            for k, v in params.items():
                cmd += ["-P", f"{k}:{v}"]
            for k, v in meta.items():
                cmd += ["-M", f"{k}:{v}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=qmd.parent)
            if proc.returncode != 0:
                raise RenderError("quarto render failed", file=qmd, found=f"exit status {proc.returncode}", detail=proc.stderr[-4000:])
            os.replace(Path(tmp) / name, out / name)
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
    lines += [f"{k} = {(v if isinstance(v, str | int | float | bool | type(None)) else str(v))!r}" for k, v in params.items()]
    return "\n".join(lines)


_INCLUDE = re.compile(r"^[ \t]*\{\{<\s*include\s+(\S+?)\s*>\}\}[ \t]*$", flags=re.M)
_INLINE = re.compile(r"`\{python\}\s+([^`]+?)`")


def expand_includes(path: Path, _seen: tuple[Path, ...] = ()) -> str:
    """The text of ``path`` with every ``{{< include file >}}`` line replaced by that file's text.

    Raises
    ------
    RenderError
        For a missing include file or an include cycle.
    """
    path = path.resolve()
    if path in _seen:
        raise RenderError("Include cycle in the report", file=path, found=" -> ".join(p.name for p in (*_seen, path)))
    if not path.is_file():
        raise RenderError("Included file not found", file=path, expected="an existing .qmd beside the report", hint="include paths are relative to the including file")
    text = path.read_text(encoding="utf-8")

    def sub(m: re.Match[str]) -> str:
        inc = expand_includes(path.parent / m.group(1), (*_seen, path))
        if inc.startswith("---"):  # an include's front matter is not part of the document
            parts = inc.split("---", 2)
            inc = parts[2] if len(parts) == 3 else inc
        return inc.strip("\n")

    return _INCLUDE.sub(sub, text)


def _substitute_inline(text: str, values: Sequence[str]) -> str:
    """Replace the inline expressions of ``text``, in order, by their values."""
    it = iter(values)
    return _INLINE.sub(lambda _m: next(it), text)


def _inline_cell(exprs: Sequence[str]) -> str:
    lines = ["__popeval_inline__ = []"]
    lines += [f"__popeval_inline__.append(__popeval_md__(({e})))" for e in exprs]
    lines.append("print(__popeval_json__.dumps(__popeval_inline__))")
    return "\n".join(lines)


_KERNEL_SETUP = """%matplotlib inline
import json as __popeval_json__
def __popeval_md__(value):
    md = getattr(value, "_repr_markdown_", None)
    return md() if callable(md) else str(value)
"""


#: Folders of the report kernel's IPC sockets and connection file, in the system's temporary folder
#: (a socket path must be short); the name carries the pid of the process that owns the kernel.
KERNEL_DIR_PREFIX = "popeval-kernel-"


def remove_stale_kernel_dirs(tmp: str | Path | None = None) -> int:
    """Delete the kernel folders (IPC sockets, connection file) of processes that no longer exist.

    A run killed while rendering (``SIGKILL``) cannot remove its kernel's folder; the next render does.

    Returns
    -------
    int
        How many were removed.
    """
    import contextlib
    import os
    import tempfile

    n = 0
    for p in Path(tmp or tempfile.gettempdir()).glob(f"{KERNEL_DIR_PREFIX}*"):
        m = re.match(rf"{KERNEL_DIR_PREFIX}(\d+)-", p.name)
        if not m or not p.is_dir():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its process is alive: a render under way
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's process
        with contextlib.suppress(OSError):
            shutil.rmtree(p)
            n += 1
    return n


def _run_kernel(nb: Any, build: Path, env: Mapping[str, str], log: Any, timeout: int) -> None:
    """Execute every cell of ``nb`` in a Jupyter kernel that dies with this process.

    The kernel talks over IPC sockets in a private folder; it is killed by the operating system when
    this process dies (even by ``SIGKILL``: :func:`analysis.processes.die_with_parent`), shut down
    when the cells are done or an error or interruption ends the render, and every socket and zmq
    context is closed.  The cells run one by one: nbclient's ``execute`` would replace this
    process's ``SIGINT``/``SIGTERM`` handlers by its own while it runs.
    """
    import contextlib
    import functools
    import os
    import tempfile

    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    from analysis.processes import die_with_parent

    remove_stale_kernel_dirs()
    ipc = Path(tempfile.mkdtemp(prefix=f"{KERNEL_DIR_PREFIX}{os.getpid()}-"))
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(ipc / "k"), connection_file=str(ipc / "kernel.json"))
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(build)}})
    try:
        km.start_kernel(env=dict(env), stdout=log, stderr=log, cwd=str(build), preexec_fn=functools.partial(die_with_parent, os.getpid()))
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
    finally:
        # an interruption may arrive here too (while the kernel shuts down): the kernel is killed
        # first, then the sockets closed, and the private folder is removed whatever happens
        try:
            with contextlib.suppress(Exception):
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
            with contextlib.suppress(Exception):
                if client.kc is not None:
                    client.kc.stop_channels()
                    client.kc.context.destroy(linger=0)
            with contextlib.suppress(Exception):
                km.context.destroy(linger=0)
        finally:
            shutil.rmtree(ipc, ignore_errors=True)


@dataclass(frozen=True)
class _Notebook:
    """The report as a notebook ready to execute, with its front matter and the cells' default options."""

    nb: Any
    front: dict[str, Any]
    #: The front matter as written (the start of the Markdown document), or ``""``.
    front_text: str
    #: The ``execute`` options of ``_quarto.yml`` and the front matter (``echo``, ``include``, ``output``).
    defaults: dict[str, Any]


def _execute(qmd: Path, build: Path, params: Mapping[str, Any], timeout: int) -> tuple[str, dict[str, Any]]:
    """Execute the .qmd's code cells in ``build`` and return the Markdown document and its front matter."""
    doc = _notebook(qmd, params)
    _execute_notebook(doc.nb, qmd, build, timeout)
    return _markdown(doc, build), doc.front


def _hidden_cell(source: str, quarto: dict[str, Any]) -> Any:
    """A code cell of the fallback's own, with its Quarto options."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["quarto"] = quarto
    return cell


def _notebook(qmd: Path, params: Mapping[str, Any]) -> _Notebook:
    """The .qmd (includes expanded) as a notebook: the kernel's setup, the parameters and inline cells added."""
    import jupytext

    nb = jupytext.reads(expand_includes(qmd), fmt="Rmd")
    front, front_text = _front_matter(nb)
    defaults = {**(project_execute(qmd.parent)), **((front.get("execute") or {}) if isinstance(front, dict) else {})}
    cells = _cells_to_execute(nb.cells[1:] if front_text else nb.cells, params)
    nb.cells = [_hidden_cell(_KERNEL_SETUP, {"echo": False, "include": False}), *cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return _Notebook(nb=nb, front=front, front_text=front_text, defaults=defaults)


def _cells_to_execute(source_cells: Sequence[Any], params: Mapping[str, Any]) -> list[Any]:
    """The document's cells with their ``#|`` options, the injected parameters and a cell per inline paragraph.

    The parameters follow the cell tagged ``parameters`` (or come first without one); a paragraph
    with inline expressions is preceded by a hidden cell that prints their values
    (``popeval_inline_from`` is that cell's position).
    """
    cells: list[Any] = []
    injected = False
    for cell in source_cells:
        if cell.cell_type == "code":
            opts, _ = _cell_options(cell.source)
            cell.metadata["quarto"] = opts
            cells.append(cell)
            if "parameters" in (opts.get("tags") or []) and not injected:
                cells.append(_hidden_cell(_injected_source(params), {"echo": False, "include": False}))
                injected = True
        elif cell.cell_type == "markdown" and _INLINE.search(cell.source):
            new = _hidden_cell(_inline_cell(_INLINE.findall(cell.source)), {"include": False})
            new.metadata["popeval_inline"] = True
            cell.metadata["popeval_inline_from"] = len(cells)
            cells += [new, cell]
        else:
            cells.append(cell)
    if not injected:
        cells.insert(0, _hidden_cell(_injected_source(params), {"echo": False, "include": False}))
        for c in cells:
            if "popeval_inline_from" in c.metadata:
                c.metadata["popeval_inline_from"] += 1
    return cells


def _execute_notebook(nb: Any, qmd: Path, build: Path, timeout: int) -> None:
    """Run the notebook's cells in a kernel that finds this package; its log goes to ``build/kernel.log``."""
    import os

    from nbclient.exceptions import CellExecutionError

    repo = str(Path(__file__).resolve().parents[2])
    env_path = os.environ.get("PYTHONPATH", "")
    # the kernel's own environment finds this package; this process's environment is not changed
    kernel_env = {**os.environ, "PYTHONPATH": repo + (os.pathsep + env_path if env_path else "")}
    log = (build / "kernel.log").open("w", encoding="utf-8")
    try:
        _run_kernel(nb, build, kernel_env, log, timeout)
    except CellExecutionError as exc:
        raise RenderError("A code cell of the report failed", file=qmd, detail=re.sub(r"\x1b\[[0-9;]*m", "", str(exc))[-4000:], hint="the traceback above names the cell; check the bundle") from exc
    finally:
        log.close()


class _Figures:
    """The executed cells' figures as PNG files in the build folder, numbered in the order they appear."""

    def __init__(self, build: Path) -> None:
        self.build = build
        self.n = 0

    def image(self, png: str, lab: str, opts: Mapping[str, Any]) -> str:
        """The figure (base64 PNG) written to ``_figures/``, as a Markdown image with its caption, label and alt text."""
        import base64

        self.n += 1
        name = lab or f"fig-cell-{self.n}"
        path = self.build / "_figures" / f"{name}-{self.n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(png))
        cap = str(opts.get("fig-cap", ""))
        alt = str(opts.get("fig-alt", "")).replace('"', "&quot;")
        ident = f"#{lab} " if lab.startswith("fig-") else ""
        alt_attr = f' fig-alt="{alt}"' if alt else ""
        return f"![{cap}]({path.relative_to(self.build).as_posix()}){{{ident}width=100%{alt_attr}}}"


def _markdown(doc: _Notebook, build: Path) -> str:
    """The executed notebook as one Markdown document (front matter, text, the outputs Quarto shows)."""
    parts: list[str] = [doc.front_text] if doc.front_text else []
    figures = _Figures(build)
    for pos, cell in enumerate(doc.nb.cells):
        if cell.cell_type == "markdown":
            parts.append(_markdown_cell(doc.nb.cells, pos))
        elif cell.cell_type == "code":
            parts += _code_cell_markdown(cell, doc.defaults, figures)
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def _markdown_cell(cells: Sequence[Any], pos: int) -> str:
    """A Markdown cell's text, its inline expressions replaced by the values the cell before it printed."""
    import json as _json

    cell = cells[pos]
    if "popeval_inline_from" not in cell.metadata:
        return str(cell.source)
    src = cells[pos - 1]
    out = "".join(o.get("text", "") for o in src.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stdout")
    values: list[str] = list(_json.loads(out.strip().splitlines()[-1]))
    return _substitute_inline(cell.source, values)


def _code_cell_markdown(cell: Any, defaults: Mapping[str, Any], figures: _Figures) -> list[str]:
    """A code cell as Markdown, honouring ``include``, ``echo``, ``output``, ``label`` and ``tbl-cap``."""
    opts = cell.metadata.get("quarto", {})
    if not opts.get("include", defaults.get("include", True)):
        return []
    parts: list[str] = []
    _, code = _cell_options(cell.source)
    if opts.get("echo", defaults.get("echo", True)) and code.strip():
        parts.append(f"```python\n{code}\n```")
    if opts.get("output", True) is False:
        return parts
    asis = opts.get("output", defaults.get("output")) == "asis"
    lab = str(opts.get("label") or "")
    body = [text for output in cell.get("outputs", []) if (text := _output_markdown(output, opts, asis=asis, lab=lab, figures=figures)) is not None]
    if lab.startswith("tbl-"):
        cap = str(opts.get("tbl-cap", ""))
        parts.append(f"::: {{#{lab}}}\n\n" + "\n\n".join(b.rstrip("\n") for b in body) + f"\n\n: {cap}\n\n:::")
    else:
        parts += body
    return parts


def _output_markdown(output: Mapping[str, Any], opts: Mapping[str, Any], *, asis: bool, lab: str, figures: _Figures) -> str | None:
    """One output of a cell as Markdown (``None`` for what Quarto does not show: stderr, other types)."""
    kind = output.get("output_type")
    if kind == "stream":
        if output.get("name") == "stderr":
            return None
        text = str(output.get("text", ""))
        return text if asis else f"```\n{text.rstrip()}\n```"
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data", {})
    if "image/png" in data:
        return figures.image(data["image/png"], lab, opts)
    if "text/markdown" in data:
        return str(data["text/markdown"])
    if "text/plain" in data:
        return str(data["text/plain"]) if asis else f"```\n{data['text/plain']}\n```"
    return None


@cache
def _pandoc_exe() -> str:
    """pypandoc-binary's pandoc (found once: pypandoc's lookup is not safe in threads, and a
    system pandoc found on PATH instead may be too old to write Typst)."""
    import pypandoc

    return str(pypandoc.get_pandoc_path())


def _pandoc(args: Sequence[str], cwd: Path) -> None:
    exe = _pandoc_exe()
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False, cwd=cwd)
    if proc.returncode != 0:
        raise RenderError("pandoc failed", found=f"exit status {proc.returncode}", detail=proc.stderr[-4000:], hint=" ".join(args[:6]))


def _meta_args(meta: Mapping[str, str]) -> list[str]:
    args = []
    for k, v in meta.items():
        args += ["-M", f"{k}={v}"]
    return args


def project_execute(folder: Path) -> dict[str, Any]:
    """The ``execute`` defaults of ``_quarto.yml`` (e.g. ``echo: false``)."""
    import yaml

    path = folder / "_quarto.yml"
    if not path.is_file():
        return {}
    return dict((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("execute") or {})


def project_options(folder: Path) -> dict[str, Any]:
    """The format options of ``_quarto.yml`` the fallback honours: css, template, reference-doc, toc, filters."""
    import yaml

    path = folder / "_quarto.yml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RenderError("Invalid _quarto.yml", file=path, detail=str(exc)) from exc
    fmt = cfg.get("format") or {}
    return {"filters": list(cfg.get("filters") or []), "html": fmt.get("html") or {}, "typst": fmt.get("typst") or {}, "docx": fmt.get("docx") or {}}


@dataclass(frozen=True)
class _PandocJob:
    """What every output format's pandoc call shares: the Markdown, its arguments and folders."""

    md: Path
    #: The arguments after the input file: reader, metadata, resource path, columns, Lua filters.
    common: list[str]
    #: The report's project folder (``_quarto.yml``, stylesheets, templates).
    folder: Path
    build: Path
    out: Path
    #: The outputs' file name without suffix (``evaluation-<lang>``).
    base: str


def _format_flags(fmt_opts: Mapping[str, Any]) -> list[str]:
    """pandoc's section numbering and table of contents, from a format's options in ``_quarto.yml``."""
    args = []
    if fmt_opts.get("number-sections"):
        args.append("--number-sections")
    if fmt_opts.get("toc"):
        args += ["--toc", f"--toc-depth={fmt_opts.get('toc-depth', 2)}"]
    return args


def _write_html(job: _PandocJob, h: Mapping[str, Any]) -> Path:
    """The HTML report, standalone with embedded resources and the project's stylesheets."""
    from survey.files import atomic_write  # every output file appears complete or not at all

    target = job.out / f"{job.base}.html"
    with atomic_write(target, None) as tmp:
        args = [job.md.name, *job.common, "-t", "html5", "--standalone", "--embed-resources", *_format_flags(h), "-o", str(tmp)]
        for css in [h["css"]] if isinstance(h.get("css"), str) else h.get("css", []):
            args += ["--css", str(job.folder / css)]
        _pandoc(args, job.build)
    return target


def _write_docx(job: _PandocJob, d: Mapping[str, Any]) -> Path:
    """The DOCX report, styled by the project's reference document when there is one."""
    from survey.files import atomic_write

    target = job.out / f"{job.base}.docx"
    with atomic_write(target, None) as tmp:
        args = [job.md.name, *job.common, "-t", "docx", *_format_flags(d), "-o", str(tmp)]
        if d.get("reference-doc") and (job.folder / d["reference-doc"]).is_file():
            args += ["--reference-doc", str(job.folder / d["reference-doc"])]
        _pandoc(args, job.build)
    return target


def _write_pdf(job: _PandocJob, t: Mapping[str, Any]) -> Path:
    """The PDF report: pandoc writes Typst markup (with the project's template), typst compiles it."""
    import typst

    from survey.files import atomic_write

    target = job.out / f"{job.base}.pdf"
    typ = job.build / f"{job.base}.typ"
    args = [job.md.name, *job.common, "-t", "typst", "--standalone", *_format_flags(t), "-V", f"papersize={t.get('papersize', 'a4')}", "-o", str(typ)]
    if t.get("section-numbering"):
        args += ["-V", f"section-numbering={t['section-numbering']}"]
    partials = [str(x) for x in t.get("template-partials") or []]
    template = next((x for x in partials if Path(x).name == "typst-template.typ"), None)
    if template:  # the partial that defines conf(); pandoc's own typst template imports it
        shutil.copyfile(job.folder / template, job.build / "typst-template.typ")
        args += ["-V", "template=typst-template.typ"]
    _pandoc(args, job.build)
    try:
        with atomic_write(target, None) as tmp:
            typst.compile(str(typ), output=str(tmp), root=str(job.build), font_paths=_font_paths())
    except Exception as exc:  # typst raises its own error types
        raise RenderError("typst failed to compile the PDF", file=typ, detail=str(exc)[-4000:]) from exc
    return target


#: The fallback's writer of each format, in the order they are written, with its section in ``_quarto.yml``.
_WRITERS = (("html", "html", _write_html), ("docx", "docx", _write_docx), ("pdf", "typst", _write_pdf))


def _write_formats(job: _PandocJob, opts: Mapping[str, Any], formats: Sequence[str]) -> dict[str, Path]:
    """Every requested format written from the one Markdown document, side by side.

    Each writer is a pandoc process (and, for the PDF, typst), independent of the others: they run
    in threads at once, so the formats take about as long as the slowest.  A writer's error is
    raised after the others have finished (their outputs are complete files or absent).
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = [(fmt, section, write) for fmt, section, write in _WRITERS if fmt in formats]
    _pandoc_exe()  # before the threads
    with ThreadPoolExecutor(max_workers=max(1, len(todo)), thread_name_prefix="popeval-pandoc") as pool:
        futures = {fmt: pool.submit(write, job, opts.get(section, {})) for fmt, section, write in todo}
        return {fmt: future.result() for fmt, future in futures.items()}


def _render_python(qmd: Path, out: Path, params: Mapping[str, Any], formats: Sequence[str], meta: Mapping[str, str], lang: str, timeout: int) -> RenderResult:
    import os

    from survey.files import atomic_write  # every output file appears complete or not at all

    folder = qmd.parent.resolve()
    opts = project_options(folder)
    build = out / f"_build-{lang}"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    md_text, _front = _execute(qmd, build, params, timeout)
    md = build / f"evaluation-{lang}.md"
    md.write_text(md_text, encoding="utf-8")
    filters: list[str] = []
    for f in opts.get("filters", []):
        filters += ["--lua-filter", str(folder / f)]
    common = ["-f", "markdown", *_meta_args(meta), "--resource-path", f"{build}{os.pathsep}{folder}", "--columns", "400", *filters]
    base = f"evaluation-{lang}"
    job = _PandocJob(md=md, common=common, folder=folder, build=build, out=out, base=base)
    outputs = _write_formats(job, opts, formats)
    with atomic_write(out / f"{base}.params.json") as fh:
        fh.write(json.dumps(dict(params), indent=2, sort_keys=True, default=str) + "\n")
    return RenderResult(outputs=outputs, engine="python (jupytext + nbclient + pandoc + typst)", markdown=md, params=dict(params))


def _font_paths() -> list[str]:
    """matplotlib's bundled fonts (DejaVu Sans): the figures' typeface is then always the text's."""
    import matplotlib

    return [str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")]
