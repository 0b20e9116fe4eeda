"""Small charts drawn on the server as SVG: no script, no chart library, nothing from outside.

The staff pages' Content-Security-Policy allows no scripts; inline ``<svg>`` with presentation
attributes needs none. Colours come from classes in ops.css.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def stacked_bars(points: Sequence[tuple[str, int, int]], *, width: int = 640, height: int = 180,
                 title: str = "") -> Markup:
    """Bars of ``(label, ok, failed)`` — successes below, failures stacked on top — with the labels
    under the bars and the largest total on the axis."""
    pad_left, pad_bottom, pad_top = 36, 22, 10
    top = max((ok + bad for _, ok, bad in points), default=0) or 1
    inner_w, inner_h = width - pad_left - 4, height - pad_bottom - pad_top
    slot = inner_w / max(len(points), 1)
    bar = max(slot * 0.7, 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{pad_left}" y1="{pad_top + inner_h}" x2="{width - 4}" y2="{pad_top + inner_h}"/>',
             f'<text class="tick" x="{pad_left - 4}" y="{pad_top + 8}" text-anchor="end">{top}</text>',
             f'<text class="tick" x="{pad_left - 4}" y="{pad_top + inner_h}" text-anchor="end">0</text>']
    every = max(1, len(points) // 12)
    for i, (label, ok, bad) in enumerate(points):
        x = pad_left + i * slot + (slot - bar) / 2
        h_ok, h_bad = inner_h * ok / top, inner_h * bad / top
        y_ok = pad_top + inner_h - h_ok
        parts.append(f'<rect class="ok" x="{_num(x)}" y="{_num(y_ok)}" width="{_num(bar)}" height="{_num(h_ok)}">'
                     f"<title>{escape(label)}：成功 {ok}，失败 {bad}</title></rect>")
        if bad:
            parts.append(f'<rect class="bad" x="{_num(x)}" y="{_num(y_ok - h_bad)}" width="{_num(bar)}" '
                         f'height="{_num(h_bad)}"/>')
        if i % every == 0:
            parts.append(f'<text class="tick" x="{_num(x + bar / 2)}" y="{height - 6}" text-anchor="middle">'
                         f"{escape(label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(values: Sequence[int], failures: Sequence[int] = (), *, width: int = 120, height: int = 28,
              title: str = "") -> Markup:
    """A tiny bar strip for a table cell."""
    top = max(values, default=0) or 1
    slot = width / max(len(values), 1)
    parts = [f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, value in enumerate(values):
        h = (height - 2) * value / top
        bad = failures[i] if i < len(failures) else 0
        klass = "bad" if bad and bad * 5 >= max(value, 1) else "ok"
        parts.append(f'<rect class="{klass}" x="{_num(i * slot + 1)}" y="{_num(height - h)}" '
                     f'width="{_num(max(slot - 2, 1))}" height="{_num(h)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def gauge(percent: float | None, *, width: int = 80, height: int = 10, title: str = "") -> Markup:
    """A horizontal bar for CPU / memory / disk use."""
    if percent is None:
        return Markup("—")
    p = max(0.0, min(100.0, percent))
    klass = "bad" if p >= 90 else ("warn" if p >= 75 else "ok")
    return Markup(f'<svg class="gauge" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="{escape(title)} {p:.0f}%" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(title)} {p:.0f}%</title><rect class="track" x="0" y="0" width="{width}" '
                  f'height="{height}"/><rect class="{klass}" x="0" y="0" width="{_num(width * p / 100)}" '
                  f'height="{height}"/></svg>')
