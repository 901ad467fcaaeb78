"""The matcher's settings: sources in order (flags > env > file > defaults), and the operator key's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from pydantic import ValidationError

from matcher.__main__ import parse_args
from matcher.settings import MatcherSettings, SettingsError, dev_addresses

ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
PRIVATE_KEY = "0x" + "5a" * 32


def test_settings_defaults_are_a_local_devnet(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GPUSPOT_MATCHER_PORT", "GPUSPOT_MATCHER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = MatcherSettings.load()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url == "sqlite:///.state/matcher.db"
    assert settings.pricing_rule == "uniform"


def test_settings_flags_beat_env_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "matcher.toml"
    config.write_text('port = 9001\nbatch_interval = 2.5\npricing_rule = "mcafee"\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("GPUSPOT_MATCHER_PORT", "9002")
    monkeypatch.setenv("GPUSPOT_MATCHER_HOST", "10.0.0.1")
    settings = MatcherSettings.load(config, host="10.0.0.2", port=None)
    assert (settings.port, settings.batch_interval, settings.pricing_rule) == (9002, 2.5, "mcafee")
    assert settings.host == "10.0.0.2"
    assert settings.min_lifetime == 3 + settings.root_posting_margin


def test_settings_refuse_bad_values_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        MatcherSettings.load(pricing_rule="best")
    with pytest.raises(ValidationError):
        MatcherSettings.load(batch_interval=0)
    config = tmp_path / "matcher.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ValidationError):
        MatcherSettings.load(config)
    with pytest.raises(SettingsError, match="no matcher config file"):
        MatcherSettings.load(tmp_path / "missing.toml")


def test_anvil_dev_keys_are_refused_outside_a_devnet(tmp_path: Path) -> None:
    assert Account.from_key(ANVIL_KEY_0).address in dev_addresses()
    settings = MatcherSettings.load(operator_key=ANVIL_KEY_0)
    assert settings.operator_account(31337).address == Account.from_key(ANVIL_KEY_0).address
    with pytest.raises(SettingsError, match="public development keys"):
        settings.operator_account(1)
    key_file = tmp_path / "operator.key"
    key_file.write_text(PRIVATE_KEY + "\n")
    from_file = MatcherSettings.load(operator_key_file=key_file)
    assert from_file.operator_account(1).address == Account.from_key(PRIVATE_KEY).address
    with pytest.raises(SettingsError, match="no operator key"):
        MatcherSettings.load().operator_account(31337)
    with pytest.raises(ValidationError, match="not both"):
        MatcherSettings.load(operator_key=PRIVATE_KEY, operator_key_file=key_file)


def test_cli_flags_map_to_settings_names() -> None:
    args = parse_args(["--port", "9100", "--pricing-rule", "pay-as-bid", "--batch-interval", "1"])
    settings = MatcherSettings.load(**{k: v for k, v in vars(args).items() if k != "config"})
    assert (settings.port, settings.pricing_rule, settings.batch_interval) == (9100, "pay-as-bid", 1.0)
