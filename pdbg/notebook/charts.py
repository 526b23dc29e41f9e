"""Charts of released answers with their 95% CIs as error bars.

Why always error bars: a DP answer without its uncertainty invites over-reading
(two bars that differ by less than the noise are not different). Figures are built
with the object API (no pyplot global state, works in threads and widget callbacks)
and shown as PNG so they render the same in JupyterLab, nbval and exports.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

from pdbg.notebook.display import CI_HIGH, CI_LOW, key_columns, value_columns


def _frame(result_or_df):
    return getattr(result_or_df, "df", result_or_df)


def _is_time(series) -> bool:
    import pandas as pd

    return pd.api.types.is_datetime64_any_dtype(series) or (
        len(series) > 0 and hasattr(series.iloc[0], "isoformat") and not isinstance(series.iloc[0], str)
    )


def _errs(df, col: str):
    """Asymmetric error-bar lengths from the CI columns (never negative)."""
    import numpy as np

    v = df[col].astype(float).to_numpy()
    lo = np.clip(v - df[col + CI_LOW].astype(float).to_numpy(), 0, None)
    hi = np.clip(df[col + CI_HIGH].astype(float).to_numpy() - v, 0, None)
    return np.vstack([lo, hi])


def plot(
    result_or_df,
    x: str | None = None,
    y: str | Sequence[str] | None = None,
    kind: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 3.2),
):
    """Draw a result (or its DataFrame) with 95% CI error bars; returns a matplotlib Figure.

    ``x`` defaults to the first key column, ``y`` to every released value column.
    ``kind`` is ``line`` for time keys (time series with a CI band) and ``bar`` otherwise.
    """
    from matplotlib.figure import Figure

    df = _frame(result_or_df)
    keys, vals = key_columns(df), value_columns(df)
    ys = [y] if isinstance(y, str) else list(y or vals)
    if not ys:
        raise ValueError("nothing to chart: the result has no columns with confidence intervals")
    for col in ys:
        if col not in vals:
            raise ValueError(f"column {col!r} has no CI columns; choose one of {', '.join(vals)}")
    x = x if x is not None else (keys[0] if keys else None)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    if x is not None and df[x].isna().any():
        df = df[df[x].notna()]
    if x is not None and kind is None:
        kind = "line" if _is_time(df[x]) else "bar"
    kind = kind or "bar"

    if x is None:                              # one row, several measures: one bar per measure
        import numpy as np

        v = [float(df[c].iloc[0]) for c in ys]
        err = np.hstack([_errs(df.iloc[:1], c) for c in ys])
        ax.bar(ys, v, yerr=err, capsize=4, color="#4c78a8")
    elif kind == "line":
        xs = df[x]
        for col in ys:
            line = ax.errorbar(xs, df[col].astype(float), yerr=_errs(df, col), marker="o", ms=3, capsize=2, label=col)
            ax.fill_between(
                xs, df[col + CI_LOW].astype(float), df[col + CI_HIGH].astype(float),
                alpha=0.15, color=line[0].get_color(),
            )
        fig.autofmt_xdate()
    else:
        import numpy as np

        labels = [str(v) for v in df[x]]
        pos = np.arange(len(labels))
        width = 0.8 / len(ys)
        for i, col in enumerate(ys):
            ax.bar(pos + (i - (len(ys) - 1) / 2) * width, df[col].astype(float), width, yerr=_errs(df, col),
                   capsize=3, label=col)
        ax.set_xticks(pos, labels, rotation=30 if max((len(s) for s in labels), default=0) > 8 else 0, ha="right")
        ax.set_xlabel(x)
    if len(ys) > 1:
        ax.legend()
    ax.set_ylabel(ys[0] if len(ys) == 1 else "value")
    ax.set_title(title or "DP release · bars are 95% confidence intervals", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def show(fig) -> Any:
    """Display a figure as PNG (no matplotlib backend or pyplot state needed)."""
    from IPython.display import Image, display

    img = Image(data=png_bytes(fig), format="png")
    display(img)
    return None
