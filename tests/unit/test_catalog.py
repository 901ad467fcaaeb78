"""The product catalog file and its loader (gpuspot.catalog)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspot.catalog import (
    DEFAULT_CATALOG_PATH,
    Catalog,
    CatalogError,
    CatalogFileError,
    Interconnect,
    Product,
    UnknownProductError,
)
from gpuspot.protocol import product_id

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
version = 1
[[product]]
name = "H100-80GB"
vram_gb = 80
interconnect = "nvlink"
"""


def test_default_catalog_is_the_repository_config_file():
    assert DEFAULT_CATALOG_PATH == ROOT / "config" / "products.toml"
    catalog = Catalog.default()
    assert catalog.names == ("H100-80GB", "A100-80GB", "L40S-48GB", "RTX4090-24GB")
    assert [p.vram_gb for p in catalog] == [80, 80, 48, 24]
    assert len(catalog) == 4


def test_default_catalog_ids_are_keccak_of_the_names():
    catalog = Catalog.default()
    for product in catalog:
        assert product.id == product_id(product.name)
        assert catalog.by_id(product.id) is product
        assert catalog.by_name(product.name) is product
        assert catalog.get(product.id) is product
        assert product.id in catalog and product.name in catalog


def test_catalog_lookup_of_an_unknown_product_names_the_catalog():
    catalog = Catalog.default()
    with pytest.raises(UnknownProductError, match="use one of H100-80GB, A100-80GB"):
        catalog.by_name("h100-80gb")
    with pytest.raises(UnknownProductError, match="keccak256 of one of"):
        catalog.by_id(b"\x01" * 32)
    assert catalog.get(b"\x01" * 32) is None


def test_catalog_load_reads_a_file(tmp_path: Path):
    path = tmp_path / "products.toml"
    path.write_text(GOOD)
    catalog = Catalog.load(path)
    assert catalog.products == (Product("H100-80GB", 80, Interconnect.NVLINK),)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("version = 1\n[[product]\n", "not valid TOML"),
        ("version = 2\n" + GOOD.replace("version = 1", ""), "version must be 1"),
        ("version = 1\n", r"\[\[product\]\] tables"),
        (GOOD + GOOD.replace("version = 1", ""), "'H100-80GB' is listed twice"),
        (GOOD.replace("vram_gb = 80", "vram_gb = 0"), "vram_gb must be a positive integer"),
        (GOOD.replace("vram_gb = 80", 'vram_gb = "80"'), "vram_gb must be a positive integer"),
        (GOOD.replace('"nvlink"', '"infiniband"'), r"interconnect must be one of \['pcie', 'nvlink'\]"),
        (GOOD.replace('"H100-80GB"', '"H100 80GB"'), "name must be letters, digits"),
        (GOOD.replace('"H100-80GB"', '""'), "name must be letters, digits"),
        (GOOD + "vram = 80\n", r"unknown keys \['vram'\]"),
        ("colour = 1\n" + GOOD, r"unknown keys \['colour'\]"),
    ],
)
def test_catalog_parse_refuses_a_malformed_file(text: str, match: str):
    with pytest.raises(CatalogFileError, match=match):
        Catalog.parse(text, source="products.toml")


def test_catalog_load_of_a_missing_file_says_what_to_pass(tmp_path: Path):
    with pytest.raises(CatalogFileError, match="no catalog file at .*pass the path of products.toml"):
        Catalog.load(tmp_path / "nope.toml")


def test_catalog_built_in_code_refuses_duplicates_and_emptiness():
    product = Product("H100-80GB", 80, Interconnect.NVLINK)
    with pytest.raises(CatalogError, match="listed twice"):
        Catalog((product, product))
    with pytest.raises(CatalogError, match="at least one product"):
        Catalog(())


def test_interconnect_floors_order_links():
    assert Interconnect.NVLINK.meets(Interconnect.PCIE)
    assert Interconnect.PCIE.meets(Interconnect.PCIE)
    assert not Interconnect.PCIE.meets(Interconnect.NVLINK)
