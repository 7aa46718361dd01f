"""Small inline SVG charts drawn on the server: no script, no chart library."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart", "histogram", "step_chart"]

W, H, PAD = 640, 220, 36


def _frame(body: str, label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" '
            f'preserveAspectRatio="xMidYMid meet">{body}</svg>')


def _axis_text(x: float, y: float, text: str, anchor: str = "middle") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="axis">{escape(text)}</text>'


def step_chart(points: Sequence[tuple[int, int]], label: str) -> str:
    """A cumulative line (x: step number, y: value) such as items over accepted entries."""
    if not points:
        return _frame(_axis_text(W / 2, H / 2, "no data yet"), label)
    top = max(y for _, y in points) or 1
    n = max(len(points) - 1, 1)

    def xy(i: int, y: int) -> tuple[float, float]:
        return PAD + i * (W - 2 * PAD) / n, H - PAD - y * (H - 2 * PAD) / top

    coords = [xy(i, y) for i, (_, y) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{PAD},{H - PAD} {line} {coords[-1][0]:.1f},{H - PAD}"
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5"><title>{v:,}</title></circle>'
                   for (x, y), (_, v) in zip(coords, points, strict=True))
    ticks = "".join(_axis_text(x, H - PAD + 18, f"#{k}") for (x, _), (k, _) in zip(coords, points, strict=True))
    body = (f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" class="base"/>'
            f'<polygon points="{area}" class="area"/><polyline points="{line}" class="line"/>{dots}{ticks}'
            + _axis_text(PAD - 6, PAD, f"{top:,}", "end") + _axis_text(PAD - 6, H - PAD, "0", "end"))
    return _frame(body, label)


def histogram(values: Sequence[float], label: str, bins: int = 20, scale: float = 1.0) -> str:
    """Counts of ``values`` in equal bins; bins below zero drawn as negative.

    The axis shows values times ``scale`` (say 10^4, as the page shows each item's value), so that the
    chart and the numbers beside it are in one unit.
    """
    if not values:
        return _frame(_axis_text(W / 2, H / 2, "no values"), label)
    lo, hi = min(values), max(values)
    if hi == lo:
        hi = lo + 1e-9
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    top = max(counts)
    bar_w = (W - 2 * PAD) / bins
    bars = []
    for i, c in enumerate(counts):
        h = c * (H - 2 * PAD) / top
        left = lo + i * width
        cls = "neg" if left + width <= 0 else "pos"
        bars.append(f'<rect x="{PAD + i * bar_w + 1:.1f}" y="{H - PAD - h:.1f}" width="{bar_w - 2:.1f}" '
                    f'height="{h:.1f}" class="{cls}"><title>{c} in [{left * scale:+.2f}, {(left + width) * scale:+.2f})</title>'
                    f'</rect>')
    body = ("".join(bars) + f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" class="base"/>'
            + _axis_text(PAD, H - PAD + 18, f"{lo * scale:+.1f}", "start")
            + _axis_text(W - PAD, H - PAD + 18, f"{hi * scale:+.1f}", "end")
            + _axis_text(PAD - 6, PAD, str(top), "end") + _axis_text(PAD, PAD - 8, "items", "start"))
    if lo < 0 < hi:
        zero = PAD + (W - 2 * PAD) * (-lo) / (hi - lo)
        body += f'<line x1="{zero:.1f}" y1="{H - PAD}" x2="{zero:.1f}" y2="{H - PAD + 5}" class="base"/>'
        if PAD + 40 < zero < W - PAD - 40:  # else it would overprint an end label
            body += _axis_text(zero, H - PAD + 18, "0")
    return _frame(body, label)


def bar_chart(pairs: Sequence[tuple[str, int]], label: str) -> str:
    """Horizontal-axis bars of labelled counts (e.g. items per label)."""
    if not pairs:
        return _frame(_axis_text(W / 2, H / 2, "no data"), label)
    top = max(v for _, v in pairs) or 1
    bar_w = (W - 2 * PAD) / len(pairs)
    bars = "".join(
        f'<rect x="{PAD + i * bar_w + 2:.1f}" y="{H - PAD - v * (H - 2 * PAD) / top:.1f}" width="{bar_w - 4:.1f}" '
        f'height="{v * (H - 2 * PAD) / top:.1f}" class="pos"><title>{escape(k)}: {v}</title></rect>'
        + _axis_text(PAD + (i + 0.5) * bar_w, H - PAD + 18, k)
        for i, (k, v) in enumerate(pairs)
    )
    return _frame(bars + _axis_text(PAD - 6, PAD, str(top), "end"), label)
