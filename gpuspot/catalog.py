"""The product catalog: the GPU classes the market trades, read from one config file.

DESIGN.md section 2: "the catalog lives in one config file, not in code". That file is
`config/products.toml` at the repository root; the matcher, the provider agent and the SDK all read it
through `Catalog.load(path)`. `Catalog.default()` finds it next to the package (`<repo>/config/products.toml`,
resolved from this module's location), which is where a checkout or an editable install (`pip install -e .`,
what `scripts/bootstrap` does) has it; an installation without the checkout passes its path explicitly, from
its service settings.

A product's on-chain id is `keccak256(utf8(name))` (`gpuspot.protocol.product_id`); its attributes are floors
an offered GPU must meet, not new products.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from gpuspot.protocol.products import ProductId, product_id

__all__ = [
    "DEFAULT_CATALOG_PATH",
    "Catalog",
    "CatalogError",
    "CatalogFileError",
    "Interconnect",
    "Product",
    "ProductId",
    "UnknownProductError",
]

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent.parent / "config" / "products.toml"
"""`<repository root>/config/products.toml`, found from this module's location."""

"""`keccak256(utf8(name))`: a product's `bytes32` in bids, asks and leaves."""

_FORMAT_VERSION = 1
# Names are hashed exactly as written, so they are kept to characters nobody confuses or trims.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class CatalogError(ValueError):
    """Root of every error raised by `gpuspot.catalog`."""


class CatalogFileError(CatalogError):
    """The catalog file is missing, is not TOML, or does not follow the catalog's format."""


class UnknownProductError(CatalogError, LookupError):
    """A product name or id that is not in the catalog."""


class Interconnect(StrEnum):
    """A GPU-to-GPU link, weakest first: a host meets a floor if its link is at least as strong."""

    PCIE = "pcie"
    NVLINK = "nvlink"

    def meets(self, floor: Interconnect) -> bool:
        order = list(Interconnect)
        return order.index(self) >= order.index(floor)


@dataclass(frozen=True, slots=True)
class Product:
    """One GPU class. `vram_gb` and `interconnect` are floors a provider's GPUs must meet."""

    name: str
    vram_gb: int
    interconnect: Interconnect
    id: ProductId = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", ProductId(product_id(self.name)))


@dataclass(frozen=True, slots=True)
class Catalog:
    """The products of the market, looked up by name or by on-chain id."""

    products: tuple[Product, ...]
    _by_name: Mapping[str, Product] = field(init=False, repr=False, compare=False)
    _by_id: Mapping[bytes, Product] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.products:
            raise CatalogError("a catalog needs at least one product")
        by_name: dict[str, Product] = {}
        for product in self.products:
            if product.name in by_name:
                raise CatalogError(f"product {product.name!r} is listed twice: keep one entry per name")
            by_name[product.name] = product
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_id", {product.id: product for product in self.products})

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Reads a catalog file (the format of `config/products.toml`)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CatalogFileError(
                f"no catalog file at {path}: pass the path of products.toml (the repository ships "
                f"config/products.toml)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogFileError(f"cannot read the catalog file {path}: {exc}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def default(cls) -> Catalog:
        """The repository's catalog, `DEFAULT_CATALOG_PATH`."""
        return cls.load(DEFAULT_CATALOG_PATH)

    @classmethod
    def parse(cls, text: str, source: str = "<catalog>") -> Catalog:
        """Parses catalog TOML; every error names `source` and the entry at fault."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogFileError(f"{source} is not valid TOML: {exc}") from None
        _check_keys(document, {"version", "product"}, source)
        if document.get("version") != _FORMAT_VERSION:
            raise CatalogFileError(
                f"{source}: version must be {_FORMAT_VERSION}, got {document.get('version')!r}"
            )
        entries = document.get("product")
        if not isinstance(entries, list) or not entries:
            raise CatalogFileError(f'{source}: list the products as [[product]] tables with name = "..."')
        products = tuple(_product(entry, f"{source}: product #{n + 1}") for n, entry in enumerate(entries))
        try:
            return cls(products)
        except CatalogError as exc:
            raise CatalogFileError(f"{source}: {exc}") from None

    def by_name(self, name: str) -> Product:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownProductError(
                f"no product named {name!r} in the catalog: use one of {', '.join(self.names)}"
            ) from None

    def by_id(self, id_: bytes) -> Product:
        try:
            return self._by_id[id_]
        except (KeyError, TypeError):
            raise UnknownProductError(
                f"no product with id {_hex(id_)} in the catalog: the id is keccak256 of one of "
                f"{', '.join(self.names)}"
            ) from None

    def get(self, id_: bytes) -> Product | None:
        """The product with on-chain id `id_`, or None: the lookup order intake makes for every order."""
        return self._by_id.get(id_)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(product.name for product in self.products)

    def __contains__(self, id_or_name: object) -> bool:
        return id_or_name in self._by_id or id_or_name in self._by_name

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products)

    def __len__(self) -> int:
        return len(self.products)


def _hex(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else repr(value)


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CatalogFileError(f"{where}: unknown keys {unknown}: the keys are {sorted(allowed)}")


def _product(entry: object, where: str) -> Product:
    if not isinstance(entry, dict):
        raise CatalogFileError(f"{where} must be a table")
    _check_keys(entry, {"name", "vram_gb", "interconnect"}, where)
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise CatalogFileError(
            f"{where}: name must be letters, digits, '.', '_' or '-' (hashed as written), got {name!r}"
        )
    vram_gb = entry.get("vram_gb")
    if isinstance(vram_gb, bool) or not isinstance(vram_gb, int) or vram_gb <= 0:
        raise CatalogFileError(f"{where} ({name}): vram_gb must be a positive integer, got {vram_gb!r}")
    try:
        interconnect = Interconnect(str(entry.get("interconnect")))
    except ValueError:
        raise CatalogFileError(
            f"{where} ({name}): interconnect must be one of {[i.value for i in Interconnect]}, "
            f"got {entry.get('interconnect')!r}"
        ) from None
    return Product(name=name, vram_gb=vram_gb, interconnect=interconnect)
