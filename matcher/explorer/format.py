"""How the explorer writes numbers, times, hashes and links: pure functions returning escaped HTML.

Money is exact: integer base units in, token units out by integer arithmetic (`token_units`), the base
units in the hover title; never a float. Times are shown relative ("3 min ago") with the absolute UTC time
in the hover title and a machine-readable `datetime` that the page's script keeps current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from markupsafe import Markup, escape

from gpuspot.catalog import Catalog

__all__ = [
    "Formatter",
    "duration_text",
    "gpu_hours",
    "hex0x",
    "relative_time",
    "short_hex",
    "token_units",
    "utc_text",
]


def token_units(amount: int, decimals: int) -> str:
    """`amount` base units as token units, exactly, with thousands separators and no trailing zeros:
    2_500_000 with 6 decimals is "2.5". Integer arithmetic, so no precision limit (a `Decimal` in the default
    context would round past 28 digits)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"an amount is an integer number of base units, got {amount!r}")
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    digits = str(fraction).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole:,}" + (f".{digits}" if digits else "")


def gpu_hours(gpu_seconds: int) -> str:
    """GPU-seconds as GPU-hours, exact up to 3 decimals (rounded half even beyond)."""
    value = (Decimal(gpu_seconds) / Decimal(3600)).quantize(Decimal("0.001"))
    return f"{value.normalize():,f}" if value else "0"


def hex0x(value: bytes | None) -> str:
    return "" if value is None else "0x" + bytes(value).hex()


def short_hex(value: str, keep: int = 6) -> str:
    """0x1234ab…cdef01 for a long hex string; short strings as they are."""
    if len(value) <= 2 + 2 * keep + 1:
        return value
    return f"{value[: 2 + keep]}…{value[-keep:]}"


def utc_text(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative_time(at: int, now: int) -> str:
    delta = now - at
    future = delta < 0
    delta = abs(delta)
    if delta < 5:
        return "just now"
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")):
        if delta >= size:
            text = f"{delta // size} {unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def duration_text(seconds: int) -> str:
    parts = []
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min"), (1, "s")):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0 s"


@dataclass(frozen=True)
class Formatter:
    """The filters the templates use, bound to the deployment's token and the render's `now`."""

    decimals: int
    symbol: str
    catalog: Catalog
    now: int

    def money(self, amount: int | None) -> Markup:
        if amount is None:
            return Markup('<span class="muted">—</span>')
        return Markup(
            '<span class="money" title="{} base units">{}</span> <span class="unit">{}</span>'
        ).format(f"{amount:,}", token_units(amount, self.decimals), self.symbol)

    def price(self, amount: int | None) -> Markup:
        if amount is None:
            return Markup('<span class="muted">—</span>')
        return self.money(amount) + Markup('<span class="unit">/GPU-h</span>')

    def when(self, at: int | None) -> Markup:
        if at is None:
            return Markup('<span class="muted">—</span>')
        iso = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        return Markup('<time datetime="{}" title="{}">{}</time>').format(
            iso, utc_text(at), relative_time(at, self.now)
        )

    def product(self, product: bytes | None) -> str:
        if product is None:
            return "—"
        found = self.catalog.get(product)
        return found.name if found is not None else short_hex(hex0x(product))

    def hash_text(self, value: bytes | str | None, keep: int = 6) -> Markup:
        """A hash shortened, the whole of it in the title (no link: for hashes that have no page)."""
        if value is None:
            return Markup('<span class="muted">—</span>')
        text = value if isinstance(value, str) else hex0x(value)
        return Markup('<code class="hash" title="{}">{}</code>').format(text, short_hex(text, keep))

    def _link(self, href: str, text: str, title: str) -> Markup:
        return Markup('<a class="hash" href="{}" title="{}"><code>{}</code></a>').format(href, title, text)

    def order(self, order_hash: bytes | None) -> Markup:
        if order_hash is None:
            return Markup('<span class="muted">—</span>')
        text = hex0x(order_hash)
        return self._link(f"/orders/{text}", short_hex(text), text)

    def tx(self, tx_hash: bytes | None) -> Markup:
        if tx_hash is None:
            return Markup('<span class="muted">—</span>')
        text = hex0x(tx_hash)
        return self._link(f"/tx/{text}", short_hex(text), text)

    def address(self, address: str | None) -> Markup:
        if not address:
            return Markup('<span class="muted">—</span>')
        return self._link(f"/address/{address}", short_hex(address, 6), address)

    def batch(self, batch_id: int | None) -> Markup:
        if batch_id is None:
            return Markup('<span class="muted">—</span>')
        return Markup('<a href="/batches/{}">#{}</a>').format(batch_id, batch_id)

    def lease(self, lease_id: int | None) -> Markup:
        if lease_id is None:
            return Markup('<span class="muted">—</span>')
        return Markup('<a href="/leases/{}">lease {}</a>').format(lease_id, lease_id)

    def gpu_hours(self, gpu_seconds: int) -> Markup:
        return Markup('<span title="{} GPU-seconds">{}</span> GPU-h').format(
            f"{gpu_seconds:,}", gpu_hours(gpu_seconds)
        )

    def duration(self, seconds: int | None) -> str:
        return "—" if seconds is None else duration_text(seconds)

    def number(self, value: int | None) -> str:
        return "—" if value is None else f"{value:,}"

    def escape(self, value: object) -> Markup:
        return escape(value)
