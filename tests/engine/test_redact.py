"""One redaction for every storage URL form SQLAlchemy accepts."""

from __future__ import annotations

import pytest

from moo_search.redact import redact_url

SECRET = "s3cr3tPW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{SECRET}@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u@h:5432/db?password={SECRET}", "postgresql://u@h:5432/db?password=***"),
        (f"postgresql://u@h/db?sslmode=require&PASSWORD={SECRET}", None),
        (f"postgresql://u:{SECRET}/x@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:{SECRET}%2Fx@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:p@{SECRET}@h/db", "postgresql://u:***@h/db"),
        (f"mysql+pymysql://root:{SECRET}@127.0.0.1:3306/test", None),
        (f"postgresql://u:x@h/db?sslpassword={SECRET}", None),
    ],
)
def test_no_form_of_a_password_survives(url, shown):
    out = redact_url(url)
    assert SECRET not in out
    assert "***" in out
    if shown is not None:
        assert out == shown


@pytest.mark.parametrize(
    "url",
    ["sqlite:///reports/x/study.db", "postgresql://postgres@127.0.0.1:5432/moo", "memory://"],
)
def test_a_url_without_a_secret_is_unchanged(url):
    assert redact_url(url) == url


def test_an_mlflow_uri_with_credentials_is_redacted_in_every_spec_record():
    from ..helpers import tiny_spec

    spec = tiny_spec(mlflow=f"https://user:{SECRET}@mlflow.example.org/")
    assert SECRET not in spec.to_yaml() and SECRET not in str(spec.to_dict())
    assert spec.to_dict(redact=False)["mlflow"].startswith("https://user:")
