"""The report's figures, drawn with matplotlib in the report's own style and typeface.

:meth:`ReportFigures.figure` draws a figure by name under :func:`matplotlib.rc_context` (the style
holds for that figure only), shows it in the Jupyter cell and closes it.  Counts below the threshold
are drawn as :data:`analysis.report.formatting.SUPPRESSED`, never as bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from analysis.report.data import ReportData
from analysis.report.formatting import SUPPRESSED, is_missing, tick_formatter
from analysis.report.labels import category_label, in_sentence, method_label, variable_label
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.typing import RcKeyType

__all__ = ["FONT", "ReportFigures"]

_INK = "#1d2b3a"  # dark slate: text, POP series, main estimator
_ACCENT = "#b08a00"  # dark Flemish yellow
_GREY = "#8c959f"
_LIGHT = "#c9ced4"
#: The report's typeface, shared by the text (CSS, Typst template, reference.docx) and the figures.
FONT = "DejaVu Sans"

# matplotlib settings of every report figure, applied with rc_context (never globally)
_FIGURE_STYLE: dict[RcKeyType, Any] = {
    "font.family": FONT,
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": _GREY,
    "axes.labelcolor": _INK,
    "xtick.color": _INK,
    "ytick.color": _INK,
    "text.color": _INK,
    "axes.formatter.use_locale": False,
    "figure.dpi": 150,
    "savefig.dpi": "figure",
}


class ReportFigures(ReportData):
    """The figures of a report (see :class:`analysis.report.builder.Report`)."""

    # ------------------------------------------------------------------ figures
    def figure(self, name: str, **options: Any) -> None:
        """Draw a figure and show it (in a Jupyter cell): ``profile``, ``flow``, ``balance``, ``forest``.

        The figure is drawn under the report's style, shown (:meth:`show`) and closed.
        """
        import matplotlib
        import matplotlib.pyplot as plt

        builders: dict[str, Callable[..., Any]] = {"profile": self._f_profile, "flow": self._f_flow, "balance": self._f_balance, "forest": self._f_forest}
        if name not in builders:
            raise ConfigError("Unknown report figure", param=name, expected=", ".join(builders), found=name)
        # the report's style holds for this figure only: drawn, shown and closed inside the context
        with matplotlib.rc_context(_FIGURE_STYLE):
            fig = builders[name](**options)
            try:
                self.show(fig)
            finally:
                plt.close(fig)

    def show(self, fig: Any) -> None:
        """Show a drawn figure as one PNG image (at the figure's resolution) in the Jupyter cell.

        The PNG is drawn once, with the figure's own (constrained) layout; a figure shown by
        pyplot's inline backend would be drawn twice, to crop it to its contents first.
        """
        import io

        from IPython.display import Image, display

        png = io.BytesIO()
        fig.savefig(png, format="png")
        display(Image(data=png.getvalue(), format="png"))

    def _f_profile(self) -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        p = self._profile()
        variables = [v for v in ("educ", "age_band", "sex", "sector", "company_size") if v in set(p.table["variable"])]
        nrow = math.ceil(len(variables) / 2) or 1
        heights = [max(len(p.table[p.table["variable"] == v]) for v in variables[2 * i : 2 * i + 2]) + 1.2 for i in range(nrow)]
        fig, axes = plt.subplots(nrow, 2, figsize=(6.6, 0.32 * sum(heights) + 0.6), sharex=True, layout="constrained", gridspec_kw={"height_ratios": heights})
        axes = np.atleast_1d(axes).ravel()
        top = float(np.nanmax(p.table[["pct_pop", "pct_all"]].to_numpy(dtype=float))) if not p.table.empty else 100.0
        for ax, var in zip(axes, variables, strict=False):
            sub = p.table[p.table["variable"] == var]
            labels = [category_label(var, c, self.lang) for c in sub["category"]]
            y = np.arange(len(sub))[::-1]
            for k, (col, color, name) in enumerate((("pct_pop", _INK, self.label("pop")), ("pct_all", _ACCENT, self.label("all_users")))):
                vals = sub[col].to_numpy(dtype=float)
                hidden = p.suppressed.loc[sub.index, col].to_numpy()
                off = 0.2 if k == 0 else -0.2
                ax.barh(y + off, np.where(hidden, 0.0, vals), height=0.38, color=color, label=name)
                for yy, h in zip(y, hidden, strict=True):
                    if h:
                        ax.text(0.5, yy + off, SUPPRESSED, va="center", fontsize=7, color=color)
            ax.set_yticks(y, labels, fontsize=7)
            ax.set_title(variable_label(var, self.lang), fontsize=8.5, loc="left", color=_INK)
            ax.set_xlim(0, min(100.0, math.ceil(top / 10) * 10 + 5))
            ax.xaxis.set_major_formatter(tick_formatter(self.lang))
            ax.tick_params(axis="x", labelbottom=True, labelsize=7)
            ax.grid(axis="x", color="#e6e8eb", linewidth=0.6)
            ax.set_axisbelow(True)
        for ax in axes[len(variables) :]:
            ax.axis("off")
        axes[len(variables) - 1].set_xlabel(self.label("axis_pct"), fontsize=7.5)
        if len(variables) > 1:
            axes[len(variables) - 2].set_xlabel(self.label("axis_pct"), fontsize=7.5)
        handles, labs = axes[0].get_legend_handles_labels()
        if len(variables) < len(axes):
            axes[-1].legend(handles, labs, frameon=False, fontsize=8, loc="center")
        else:
            fig.legend(handles, labs, frameon=False, fontsize=8, loc="outside lower center", ncols=2)
        return fig

    def _f_flow(self) -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        flow = self._table("response_flow")
        steps = [s for s in ("invited", "started", "completed", "linked", "analysed") if s in set(flow["step"])]
        vals = np.array([float(flow.loc[flow["step"] == s, "n"].iloc[0]) for s in steps])
        hidden = np.array([0 < v < self.threshold for v in vals])
        fig, ax = plt.subplots(figsize=(6.6, 0.3 * len(steps) + 0.7), layout="constrained")
        y = np.arange(len(vals))[::-1]
        ax.barh(y, np.where(hidden, 0.0, vals), color=_INK, height=0.6)
        top = float(vals.max()) if len(vals) else 1.0
        for yy, v, h in zip(y, vals, hidden, strict=True):
            ax.text((0 if h else v) + top * 0.01, yy, SUPPRESSED if h else self._int(v), va="center", fontsize=7.5, color=_INK)
        ax.set_yticks(y, [self.label(f"step_{s}") for s in steps], fontsize=7.5)
        ax.set_xlim(0, top * 1.15)
        ax.xaxis.set_major_formatter(tick_formatter(self.lang))
        ax.set_xlabel(self.label("axis_persons"), fontsize=7.5)
        return fig

    def _f_balance(self) -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        wide, keys = self._balance_wide()
        labels = []
        for k in keys:
            name, _, cat = k.partition("=")
            labels.append(f"{variable_label(name, self.lang)}: {in_sentence(category_label(name, cat, self.lang))}" if cat else variable_label(name, self.lang))
        y = np.arange(len(keys))[::-1]
        fig, ax = plt.subplots(figsize=(6.6, 0.19 * len(keys) + 0.9), layout="constrained")
        for stage, marker, color in (("before", "o", _GREY), ("after", "D", _INK)):
            if ("smd", stage) in wide.columns:
                vals = np.abs(wide[("smd", stage)].to_numpy(dtype=float))
                ax.scatter(vals, y, marker=marker, s=16, color=color, label=self.label(stage), zorder=3, facecolors="none" if stage == "before" else color)
        ax.axvline(0.1, color=_ACCENT, linestyle="--", linewidth=1)
        ax.set_yticks(y, labels, fontsize=6.8)
        ax.set_xlabel(self.label("axis_smd"), fontsize=7.5)
        ax.set_xlim(left=0)
        ax.xaxis.set_major_formatter(tick_formatter(self.lang))
        ax.grid(axis="y", color="#eef0f2", linewidth=0.6)
        fig.legend(frameon=False, fontsize=7.5, loc="outside upper center", ncols=2)
        return fig

    def _f_forest(self, scale: str = "top2") -> Any:
        import matplotlib.pyplot as plt
        import numpy as np

        eff = self._effects(scale)
        t = eff.table
        k = 100.0 if scale == "top2" else 1.0
        outcomes = self._outcomes()
        methods = self._methods(scale)
        ncol = 2
        nrow = math.ceil(len(outcomes) / ncol) or 1
        fig, axes = plt.subplots(nrow, ncol, figsize=(6.6, nrow * (0.26 * len(methods) + 0.8) + 0.3), sharex=True, sharey=True, layout="constrained")
        axes = np.atleast_1d(axes).ravel()
        y = np.arange(len(methods))[::-1]
        lo = np.nanmin(k * t["ci_lower"].to_numpy(dtype=float)) if not t.empty else -1
        hi = np.nanmax(k * t["ci_upper"].to_numpy(dtype=float)) if not t.empty else 1
        for ax, o in zip(axes, outcomes, strict=False):
            for j, m in enumerate(methods):
                sel = t.index[(t["outcome"] == o) & (t["method"] == m)]
                if not len(sel) or eff.suppressed.at[sel[0], "estimate"] or is_missing(t.at[sel[0], "estimate"]):
                    continue
                r = t.loc[sel[0]]
                main = m == self.main_method
                color = _INK if main else _GREY
                ax.errorbar(k * r["estimate"], y[j], xerr=[[k * (r["estimate"] - r["ci_lower"])], [k * (r["ci_upper"] - r["estimate"])]], fmt="D" if main else "o", color=color, markersize=5 if main else 3.5, capsize=2, linewidth=1.6 if main else 1.0, zorder=3)
            ax.axvline(0, color=_INK, linewidth=0.7)
            ax.set_title(self.outcome(o), fontsize=8.5, loc="left", color=_INK)
            ax.set_yticks(y, [method_label(m, self.lang) for m in methods], fontsize=7)
            for tick, m in zip(ax.get_yticklabels(), methods, strict=False):
                if m == self.main_method:
                    tick.set_fontweight("bold")
            ax.grid(axis="x", color="#e6e8eb", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.tick_params(axis="x", labelbottom=True, labelsize=7)
            ax.xaxis.set_major_formatter(tick_formatter(self.lang))
        pad = 0.05 * (hi - lo) if hi > lo else 1
        axes[0].set_xlim(min(lo, 0) - pad, max(hi, 0) + pad)
        for ax in axes[len(outcomes) :]:
            ax.axis("off")
        fig.supxlabel(self.label("axis_pp" if scale == "top2" else "axis_pt"), fontsize=7.5)
        return fig
