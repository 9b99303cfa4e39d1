# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redaction of URLs and secret-looking values before they reach a message, a result or the report."""

import pytest

from ansible_collections.zerodowntime.rollout.plugins.module_utils._redact import (
    redact_data,
    redact_params,
    redact_text,
    redact_url,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@host:8443/a/b.tgz?token=x#f", "https://***@host:8443/a/b.tgz?***"),
        ("http://host/a.tgz", "http://host/a.tgz"),
        ("http://h?x=1", "http://h?***"),
        ("http://u@h#frag", "http://***@h"),
        ("http://[::1]:8080/x?a=b", "http://[::1]:8080/x?***"),
        ("tcp://10.0.0.1:9999", "tcp://10.0.0.1:9999"),
        ("/srv/app.tgz", "/srv/app.tgz"),
        # A raw '/', '?' or '#' in the password: no piece of it is shown.
        ("http://user:pa/ss@host/x", "http://***@host/x"),
        ("http://user:pa#ss@host/x", "http://***@host/x"),
        ("http://user:pa?ss@host/x?t=1", "http://***@host/x?***"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "GET http://user:secret@host/x?token=abc failed: refused",
            "GET http://***@host/x?*** failed: refused",
        ),
        (
            "('https://a:b@h/p', \"s3://k:s@bucket/o?X-Amz-Signature=1\")",
            "('https://***@h/p', \"s3://***@bucket/o?***\")",
        ),
        ("password=hunter2 token = abc&page=2 api_key=k1", "password=*** token = ***&page=2 api_key=***"),
        (
            "X-Amz-Credential=AKIA/x&X-Amz-Signature=f00&X-Amz-Date=2024",
            "X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=2024",
        ),
        ("DB_PASSWORD=x client_secret=y sig=z", "DB_PASSWORD=*** client_secret=*** sig=***"),
        (
            '{"password": "a\\"b", "user": "u", "Authorization": "Basic dTpw"}',
            '{"password": "***", "user": "u", "Authorization": "***"}',
        ),
        ("{'api_token': 'abc', 'n': 1}", "{'api_token': '***', 'n': 1}"),
        ("sent Authorization: Bearer abcdef123456, got 401", "sent Authorization: Bearer ***, got 401"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        ("curl -H 'bearer abcdefgh12345678'", "curl -H 'bearer ***'"),
        ("cannot reach admin:s3cret@prom:9090 today", "cannot reach ***@prom:9090 today"),
    ],
)
def test_redact_text_hides_secrets(text, shown):
    assert redact_text(text) == shown
    assert redact_text(shown) == shown  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "Canary analysis failed for web1 (backend be_app, 60.0s window): error_rate: canary 0.3, p=0.001",
        "max_error_rate=0.01 on_inconclusive=pass window=60",
        "HAProxy at tcp://10.0.0.11:9999 answered: No such server.",
        "prometheus_url must start with http:// or https://, got 'prom:9090'.",
        "git@github.com:org/repo.git and ops@example.com",
        "The artifact /srv/app-1.2.tgz has sha256 abc, expected def.",
        "",
    ],
)
def test_redact_text_leaves_ordinary_messages_alone(text):
    assert redact_text(text) == text


def test_redact_text_passes_non_strings_through():
    for value in (None, 3, b"http://u:p@h/"):
        assert redact_text(value) is value


def test_redact_data_walks_nested_values_and_copies():
    data = {
        "msg": "http://u:pw@h/x?t=1",
        "list": ["token=abc", ("password=x", 3)],
        "n": 1.5,
        "http://k:v@h/": None,
    }
    assert redact_data(data) == {
        "msg": "http://***@h/x?***",
        "list": ["token=***", ("password=***", 3)],
        "n": 1.5,
        "http://***@h/": None,
    }
    assert data["msg"] == "http://u:pw@h/x?t=1"


def test_redact_params_redacts_only_the_named_urls():
    params = {"url": "https://u:pw@h/x?token=t", "other": "https://u:pw@h/", "src": "/srv/a.tgz", "none": None}
    assert redact_params(params, ["url", "src", "none", "missing"]) is params
    assert params == {"url": "https://***@h/x?***", "other": "https://u:pw@h/", "src": "/srv/a.tgz", "none": None}
