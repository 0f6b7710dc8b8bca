"""Small inline SVG charts for the reports (no script, so they print as drawn)."""
from __future__ import annotations

from decimal import Decimal
from html import escape

from markupsafe import Markup


def heat_colour(score: Decimal | float | None) -> str:
    """Red (0) through amber (60) to green (100); grey for no score."""
    if score is None:
        return "#e0e0e0"
    s = max(0.0, min(100.0, float(score)))
    if s < 60:
        t = s / 60
        r, g, b = 214, int(64 + (170 - 64) * t), 60
    else:
        t = (s - 60) / 40
        r, g, b = int(214 - (214 - 46) * t), int(170 - (170 - 150) * t), int(60 + (90 - 60) * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def dimension_bars(items: list[tuple[str, Decimal | None]], width: int = 460) -> Markup:
    """Horizontal bars, 0–100, one per (label, score); None is drawn as 'not in the scheme'."""
    label_w, bar_w, row_h = 90, width - 150, 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * len(items) + 24}" '
             'class="chart" role="img">']
    for i, (label, score) in enumerate(items):
        y = i * row_h + 4
        parts.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="lbl">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="20" fill="#f1f3f5"/>')
        if score is None:
            parts.append(f'<text x="{label_w + 6}" y="{y + 17}" class="muted">未纳入本方案</text>')
            continue
        w = bar_w * float(score) / 100
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="20" fill="{heat_colour(score)}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 17}" class="num">{score}</text>')
    axis_y = row_h * len(items) + 18
    for tick in (0, 60, 80, 100):
        x = label_w + bar_w * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{axis_y - 12}" stroke="#adb5bd" stroke-dasharray="2,3"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle" class="tick">{tick}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(points: list[Decimal | None], width: int = 150, height: int = 30) -> Markup:
    """Scores 0–100 over the months (None = not scored that month: a gap)."""
    n = len(points)
    step = (width - 8) / max(n - 1, 1)
    coords = [(4 + i * step, height - 4 - (height - 8) * float(p) / 100) if p is not None else None
              for i, p in enumerate(points)]
    segments, current = [], []
    for c in coords:
        if c is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(c)
    if current:
        segments.append(current)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="spark">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f9fa"/>']
    for seg in segments:
        if len(seg) == 1:
            x, y = seg[0]
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="#1c7ed6"/>')
        else:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
            parts.append(f'<polyline points="{pts}" fill="none" stroke="#1c7ed6" stroke-width="1.5"/>')
    if coords and coords[-1] is not None:
        x, y = coords[-1]
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#d9480f"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
