"""The demo is safe by default (issue 11, point 10).

``make demo`` and ``make serve`` listened on 0.0.0.0 with DEBUG on, and 12 responses leaked
tracebacks or local paths. Here the server is started with the very command ``make -n serve``
prints (so a change to the Makefile is what is tested), on its default address, with no
``SECRET_KEY`` or ``ALLOWED_HOSTS`` in the environment, and the requests that leaked are sent
again: a 404, a missing photo, a URL with over 1,000 parameters, a foreign Host header, bad
methods, a refused form post, and real 500s (a table missing under the running server).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import requests

from tests.attacks.servers import REPO_ROOT, Server, production_env, start_server

pytestmark = pytest.mark.django_db(transaction=True)

#: What a leak looks like: a traceback, Django's debug pages, a local path.
LEAKS = re.compile(
    r"Traceback|File \"/|Django Version|Using the URLconf|DEBUG = True|technical_500|site-packages|/usr/lib/python|"
    + re.escape(str(REPO_ROOT)) + "|" + re.escape(os.path.expanduser("~")) + "/"
)


def make_dry_run(target: str, *variables: str) -> str:
    """The command line ``make -n <target>`` would run to start the server."""
    printed = subprocess.run(["make", "-n", target, *variables], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return next(line for line in printed.splitlines() if "manage.py runserver" in line)


@pytest.mark.parametrize("target", ["demo", "serve"])
def test_make_binds_the_loopback_address_unless_told_otherwise(target):
    assert make_dry_run(target, "PORT=8123").endswith("manage.py runserver 127.0.0.1:8123")
    assert make_dry_run(target, "PORT=8123", "HOST=0.0.0.0").endswith("manage.py runserver 0.0.0.0:8123")
    assert make_dry_run(target).startswith("DJANGO_SETTINGS_MODULE=config.settings.demo ")


@pytest.fixture(scope="module")
def demo(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    """The server as ``make serve`` starts it (autoreloader included), on the test database."""
    var_dir = tmp_path_factory.mktemp("demo-var")
    env = production_env(var_dir)
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE", "DEBUG"):
        env.pop(name, None)
    line = make_dry_run("serve", "PORT={port}")
    server = start_server(kind="runserver", env=env, log=var_dir / "server.log", command=line)
    try:
        yield server
    finally:
        server.stop()


def assert_no_leak(response: requests.Response) -> None:
    found = LEAKS.search(response.text)
    assert found is None, f"{response.request.method} {response.url} -> {response.status_code} leaks {found.group(0)!r}:\n{response.text[:1500]}"


def test_the_demo_keeps_its_own_secret_key_and_serves_static_files_and_photos(demo):
    # given: a product photo in the demo's media folder
    media = os.path.join(demo.env["MEDIA_ROOT"], "products", "ab")
    os.makedirs(media, exist_ok=True)
    with open(os.path.join(media, "photo.jpg"), "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0 a photo")
    # then
    home = demo.get("/")
    assert home.status_code == 200 and "<html" in home.text
    assert demo.get("/static/shop/shop.css").status_code == 200
    assert demo.get("/media/products/ab/photo.jpg").content == b"\xff\xd8\xff\xe0 a photo"
    key_file = os.path.join(demo.env["VAR_DIR"], "demo-secret-key")
    assert os.path.isfile(key_file) and oct(os.stat(key_file).st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/no-such-page/", {}, 404),
        ("GET", "/p/987654321/", {}, 404),
        ("GET", "/media/products/00/missing.jpg", {}, 404),
        ("GET", "/media/../../etc/passwd", {}, 404),
        ("GET", "/static/shop/missing.css", {}, 404),
        ("GET", "/api/no-such-endpoint", {}, 404),
        ("GET", "/search/?q=towel&" + "&".join(f"p{i}=1" for i in range(1200)), {}, 400),
        ("GET", "/api/search?q=towel&" + "&".join(f"p{i}=1" for i in range(1200)), {}, 400),
        ("GET", "/", {"Host": "evil.example"}, 400),
        ("DELETE", "/", {}, 403),  # unsafe methods meet the CSRF check before the view's method check
        ("PUT", "/search/?q=towel", {}, 403),
        ("PROPFIND", "/", {}, 403),
        ("OPTIONS", "/", {}, 405),
        ("TRACE", "/api/search?q=towel", {}, 405),
        ("POST", "/admin/login/", {}, 403),
        ("POST", "/events/click", {"Content-Type": "text/plain"}, 400),
    ],
)
def test_error_answers_carry_no_traceback_or_local_path(demo, method, path, headers, status):
    # when
    response = demo.request(method, path, headers=headers, data=b"username=a&password=b" if method == "POST" else None)
    # then
    assert response.status_code == status, response.text[:500]
    assert_no_leak(response)


@pytest.mark.parametrize("path", ["/", "/p/1/", "/api/products/", "/api/products/1/"])
def test_a_server_error_shows_the_plain_500_page(demo, broken_products_table, path):
    # when
    response = demo.get(path)
    # then
    assert response.status_code == 500
    assert_no_leak(response)
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "server_error"
