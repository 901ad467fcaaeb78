"""Where the buyer's key comes from, and what is refused: no key, two keys, a development key off the
devnet, a keystore without its password or with the wrong one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from pydantic import SecretStr

from gpuspot.sdk import BuyerSettings
from gpuspot.settings import DEV_MNEMONIC, KeyError_

Account.enable_unaudited_hdwallet_features()
DEV_KEY = "0x" + bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/3").key).hex()
PRIVATE = Account.create()
PRIVATE_KEY = "0x" + bytes(PRIVATE.key).hex()


@pytest.fixture(autouse=True)
def no_buyer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEY", "KEY_FILE", "KEYSTORE", "KEYSTORE_PASSWORD", "RPC_URL", "MATCHER_URL"):
        monkeypatch.delenv(f"GPUSPOT_BUYER_{name}", raising=False)


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUSPOT_BUYER_KEY", PRIVATE_KEY)
    monkeypatch.setenv("GPUSPOT_BUYER_MATCHER_URL", "http://matcher.example:8000")
    settings = BuyerSettings.load()
    assert settings.matcher_url == "http://matcher.example:8000"
    assert settings.account(1).address == PRIVATE.address
    assert PRIVATE_KEY not in repr(settings)


def test_no_key_says_where_to_put_one() -> None:
    with pytest.raises(KeyError_, match="GPUSPOT_BUYER_KEY or GPUSPOT_BUYER_KEY_FILE"):
        BuyerSettings.load().account(31337)


def test_a_development_key_is_refused_off_the_devnet_and_taken_on_it() -> None:
    settings = BuyerSettings(key=SecretStr(DEV_KEY))
    assert settings.account(31337).address == Account.from_key(DEV_KEY).address
    with pytest.raises(KeyError_, match="public development keys, and chain 1 is not a devnet"):
        settings.account(1)


def test_two_sources_of_a_key_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(PRIVATE_KEY)
    with pytest.raises(KeyError_, match="given 2 ways"):
        BuyerSettings(key=SecretStr(PRIVATE_KEY), key_file=key_file).account(1)


def test_a_key_file_is_read(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(PRIVATE_KEY + "\n")
    assert BuyerSettings(key_file=key_file).account(1).address == PRIVATE.address
    with pytest.raises(KeyError_, match="cannot read"):
        BuyerSettings(key_file=tmp_path / "missing").account(1)


def test_a_keystore_needs_its_password(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(PRIVATE.key, "right", iterations=2)))
    settings = BuyerSettings(keystore=keystore)
    with pytest.raises(KeyError_, match="GPUSPOT_BUYER_KEYSTORE_PASSWORD"):
        settings.account(1)
    with pytest.raises(KeyError_, match="wrong password"):
        settings.account(1, password="wrong")
    assert settings.account(1, password="right").address == PRIVATE.address
    assert BuyerSettings(keystore=keystore, keystore_password=SecretStr("right")).account(1).address == (
        PRIVATE.address
    )


def test_a_development_key_in_a_keystore_is_refused_off_the_devnet(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(DEV_KEY, "pw", iterations=2)))
    with pytest.raises(KeyError_, match="public development keys"):
        BuyerSettings(keystore=keystore).account(5, password="pw")
