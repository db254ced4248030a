import pytest

from dbrunbook.core.secrets import PASSWORD_ENV, find_secrets, kernel_environment, mask_url, resolve_url, secret_values
from dbrunbook.errors import ConfigError, UsageError


def test_mask_hides_password_and_query_password():
    url = "postgresql+psycopg://bob:s%40cret!@db.example:5432/shop?password=other&sslmode=require"
    masked = mask_url(url)
    assert "s%40cret" not in masked and "s@cret" not in masked and "other" not in masked
    assert masked.startswith("postgresql+psycopg://bob:***@db.example:5432/shop")
    assert "sslmode=require" in masked
    assert secret_values(url) == ["s@cret!", "other"]


def test_resolve_puts_password_back_from_environment(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "p@ss")
    url = resolve_url("postgresql://bob:***@h/db")
    assert url.password == "p@ss"


def test_resolve_without_environment_is_a_config_error(monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError, match=PASSWORD_ENV):
        resolve_url("postgresql://bob:***@h/db")


def test_kernel_environment_carries_only_the_secret():
    assert kernel_environment("postgresql://bob:hunter22@h/db") == {PASSWORD_ENV: "hunter22"}
    assert kernel_environment("sqlite:///x.db") == {}


def test_malformed_url_is_a_usage_error_without_password():
    with pytest.raises(UsageError) as info:
        mask_url("not a url with hunter22@host")
    assert "hunter22" not in str(info.value)


def test_find_secrets_finds_raw_and_quoted_forms(tmp_path):
    (tmp_path / "a.txt").write_text("nothing here")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text('{"url": "postgresql://u:s%40cret%21@h/db"}')
    (tmp_path / "c.txt").write_text("s@cret!")
    hits = find_secrets(tmp_path, ["s@cret!"])
    assert [p.name for p in hits] == ["c.txt", "b.json"] or sorted(p.name for p in hits) == ["b.json", "c.txt"]
    assert find_secrets(tmp_path, []) == []
