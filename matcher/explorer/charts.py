"""The price-history chart as inline SVG, drawn on the server: readable without JavaScript, no chart library.

Pure: series in, markup out. Prices stay integers (base units) until the labels, which go through
`token_units` (exact decimals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from matcher.explorer.format import token_units

__all__ = ["PALETTE", "price_chart"]

PALETTE = ("#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285")
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 14, 28
HOVER_POINTS = 100


def price_chart(
    series: Mapping[str, Sequence[tuple[int, int]]],
    *,
    decimals: int,
    symbol: str,
    title: str = "Clearing price",
) -> Markup:
    """One line per product through its (batch id, clearing price) points, batch ids on x, price per GPU-hour
    on y; each point carries a hover title. An empty chart says that nothing has cleared yet."""
    points = [p for values in series.values() for p in values]
    if not points:
        return Markup(
            '<svg class="chart" role="img" viewBox="0 0 {w} 60" width="100%"><title>{t}</title>'
            '<text x="{x}" y="34" text-anchor="middle" class="chart-empty">no batch has cleared a trade yet'
            "</text></svg>"
        ).format(w=WIDTH, t=title, x=WIDTH // 2)
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    margin = max(1, (y_hi - y_lo) // 10, y_hi // 20)  # room above and below the extremes (and the legend)
    y_lo, y_hi = max(0, y_lo - margin), y_hi + 2 * margin
    if x_lo == x_hi:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(batch_id: int) -> float:
        return LEFT + (batch_id - x_lo) * plot_w / (x_hi - x_lo)

    def y(price: int) -> float:
        return TOP + (y_hi - price) * plot_h / (y_hi - y_lo)

    parts = [
        Markup('<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="100%"><title>{t}</title>').format(
            w=WIDTH, h=HEIGHT, t=title
        ),
        Markup('<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>').format(
            l=LEFT, r=WIDTH - RIGHT, b=HEIGHT - BOTTOM
        ),
        Markup('<line class="axis" x1="{l}" y1="{t}" x2="{l}" y2="{b}"/>').format(
            l=LEFT, t=TOP, b=HEIGHT - BOTTOM
        ),
    ]
    for value in (y_lo, y_hi):
        parts.append(
            Markup('<text class="label" x="{x}" y="{y:.1f}" text-anchor="end">{v}</text>').format(
                x=LEFT - 6, y=y(value) + 4, v=token_units(value, decimals)
            )
        )
    for batch_id, anchor in ((x_lo, "start"), (x_hi, "end")):
        parts.append(
            Markup('<text class="label" x="{x:.1f}" y="{y}" text-anchor="{a}">batch {b}</text>').format(
                x=x(batch_id), y=HEIGHT - 8, a=anchor, b=batch_id
            )
        )
    parts.append(
        Markup('<text class="label" x="{x}" y="{y}" text-anchor="middle">{s}/GPU-h</text>').format(
            x=(LEFT + WIDTH - RIGHT) // 2, y=HEIGHT - 8, s=symbol
        )
    )
    # Numbers need no escaping; names and the symbol are escaped once. Plain formatting keeps a 500-point
    # chart to a millisecond or two (Markup.format per point costs ten times that).
    unit = str(escape(symbol))
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        label = str(escape(name))
        ordered = sorted(values)
        if len(ordered) > 1:
            path = " ".join(f"{x(b):.1f},{y(p):.1f}" for b, p in ordered)
            parts.append(
                Markup(
                    f'<polyline class="line" fill="none" stroke="{color}" stroke-width="2" points="{path}"/>'
                )
            )
        circles = "".join(
            f'<circle cx="{x(b):.1f}" cy="{y(p):.1f}" r="3" fill="{color}"><title>{label}, batch {b}: '
            f"{token_units(p, decimals)} {unit}/GPU-h ({p} base units)</title></circle>"
            for b, p in ordered[
                -HOVER_POINTS:
            ]  # hover targets for the newest points only: the page stays small
        )
        parts.append(Markup(circles))
        parts.append(
            Markup('<text class="legend" x="{x}" y="{y}" fill="{c}">■ {n}</text>').format(
                x=LEFT + 10 + 130 * i, y=TOP + 12, c=color, n=name
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
