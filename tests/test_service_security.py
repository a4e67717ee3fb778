"""The service's defences, each with a test that fails without it, against a real server:

- no student reads another's upload, result or feedback through any route that takes an id
  (the routes with a path parameter are listed from the app itself, so a new one must be added
  here);
- tokens are never stored or logged in clear (the database file and the server's log are
  searched for every secret after logins by form and by bearer);
- every form POST and the page's upload need the CSRF token;
- an upload over the limit is cut off while it streams (the 413 comes back long before the
  client has sent its body), and one that declares a larger size is refused before reading;
- zip bombs and path traversal are refused with collect's sentences, nothing unpacked;
- student text (an upload's file name) reaches the pages escaped;
- the web process never imports or runs a student's code: a module that leaves a mark when
  imported leaves none from the web process, and the service's modules import nothing that
  runs code (no ``autograder.grading``, ``autograder.sandbox``, ``exercise_code``, ``runpy``,
  ``importlib``, ``subprocess``, ``exec`` or ``eval``).

The constant-time comparison of tokens is tested in tests/test_tokens.py.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import secrets
import socket
import time
import zipfile
from pathlib import Path

import corpus_behaviour as cb
import pytest
from service_support import (
    ASSIGNMENT,
    client,
    make_service_course,
    running_service,
    upload,
    wait_final,
)

from autograder.service.paths import ServicePaths

pytestmark = pytest.mark.slow

LIMIT_MB = 2
SERVICE = Path(__file__).resolve().parents[1] / "autograder" / "service"


@pytest.fixture(scope="module")
def made(tmp_path_factory, models, prepared_data_dir):
    root = tmp_path_factory.mktemp("service-security")
    return make_service_course(root, models, prepared_data_dir, ["good", "model_missing"])


@pytest.fixture(scope="module")
def server(made, tmp_path_factory):
    logs = tmp_path_factory.mktemp("security-logs")
    args = ["--jobs", "1", "--max-upload-mb", str(LIMIT_MB), "--daily-cap", "20"]
    with running_service(made, logs, *args) as server:
        yield server


def _csrf(http) -> str:
    page = http.get("/login").text
    return re.search(r'name="csrftoken" value="([^"]+)"', page).group(1)


@contextlib.contextmanager
def _logged_in(server, token: str):
    """A client logged in through the form (session cookie); yields it and the CSRF token."""
    with client(server.url, follow_redirects=False) as http:
        csrf = _csrf(http)
        answer = http.post("/login", data={"token": token, "csrftoken": csrf})
        assert answer.status_code == 303, answer.text
        yield http, csrf


# --- who reads what -----------------------------------------------------------------------

ID_ROUTES = {
    "/api/submissions/{upload_id}",
    "/api/submissions/{upload_id}/feedback",
    "/api/grades/{assignment}",
    "/api/grades/{assignment}.csv",
    "/api/leaderboard/{assignment}",
}


def test_every_route_that_takes_an_id_keeps_other_students_out(server, made):
    from autograder.service.app import create_app
    from autograder.service.config import ServiceConfig

    app = create_app(ServiceConfig(made.course_dir))  # not started: only its routes are read
    with_parameters = {r.path for r in app.routes if "{" in getattr(r, "path", "")}
    assert with_parameters - {"/static"} <= ID_ROUTES | {"/static/{path:path}"}, with_parameters
    with client(server.url, made.tokens["alice"]) as alice:
        mine = upload(alice, made.zips["model_missing"]).json()["id"]
        wait_final(alice, mine)
    with client(server.url, made.tokens["bob"]) as bob:
        assert bob.get(f"/api/submissions/{mine}").status_code == 404
        assert bob.get(f"/api/submissions/{mine}/feedback").status_code == 404
        assert bob.get(f"/api/grades/{ASSIGNMENT}").status_code == 403
        assert bob.get(f"/api/grades/{ASSIGNMENT}.csv").status_code == 403
        assert bob.get("/api/leaderboard/exercise_08_optional").status_code == 403
        assert mine not in bob.get("/api/submissions").text
    with _logged_in(server, made.tokens["bob"]) as (page, _):  # the same through a session
        assert page.get(f"/api/submissions/{mine}").status_code == 404
        assert page.get(f"/api/submissions/{mine}/feedback").status_code == 404
        assert mine not in page.get("/api/submissions").text


# --- tokens --------------------------------------------------------------------------------


def test_tokens_are_never_stored_or_logged_in_clear(server, made):
    with _logged_in(server, made.tokens["carol"]) as (http, _):
        assert http.get("/api/submissions").status_code == 200
    with client(server.url, made.tokens["carol"]) as bearer:
        assert bearer.get("/api/submissions").status_code == 200
    with client(server.url, made.tokens["carol"] + "x") as wrong:
        assert wrong.get("/api/submissions").status_code == 401
    files = [p for p in made.course_dir.glob("grading.sqlite*") if p.is_file()]
    stored = b"".join(p.read_bytes() for p in files)
    log = server.log.read_bytes()
    assert b"POST /login" in log and b"GET /api/submissions" in log
    for token in made.tokens.values():
        secret = token.split(".", 1)[1].encode()
        assert secret not in stored and secret not in log


# --- CSRF ----------------------------------------------------------------------------------


def test_every_form_post_and_the_pages_upload_need_the_csrf_token(server, made):
    from autograder.store.accounts import Accounts

    accounts = Accounts(made.store())
    http = client(server.url, follow_redirects=False)
    _csrf(http)  # a CSRF cookie, but the form below does not carry the token
    refused = http.post("/login", data={"token": made.tokens["dave"]})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    http.close()
    with _logged_in(server, made.tokens["dave"]) as (http, csrf):
        dave = accounts.verify(made.tokens["dave"])
        assert http.post("/leaderboard", data={"shown": "0"}).status_code == 403
        assert accounts.get(dave.id).on_leaderboard is True
        files = {"file": ("m.zip", made.zips["model_missing"].read_bytes())}
        form = {"assignment": ASSIGNMENT}
        assert http.post("/api/submissions", data=form, files=files).status_code == 403
        assert http.post("/logout").status_code == 403
        assert http.get("/api/submissions").json() == []  # still logged in, nothing uploaded
        answer = http.post("/leaderboard", data={"shown": "0", "csrftoken": csrf})
        assert answer.status_code == 303 and accounts.get(dave.id).on_leaderboard is False
        answer = http.post(
            "/api/submissions", data=form, files=files, headers={"X-CSRFToken": csrf}
        )
        assert answer.status_code == 202
        assert http.post("/logout", data={"csrftoken": csrf}).status_code == 303
        assert http.get("/api/submissions").status_code == 401


# --- size, bombs, traversal ----------------------------------------------------------------


def _multipart_head(boundary: str, token: str, host: str) -> bytes:
    return (
        f"POST /api/submissions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_an_upload_over_the_limit_is_cut_off_while_it_streams(server, made):
    """64 MB offered in 256 KB chunks, no Content-Length: the 413 arrives after about the
    limit (2 MB), the partial file is gone, nothing was stored."""
    host, port = server.url.removeprefix("http://").split(":")
    boundary = secrets.token_hex(8)
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="assignment"\r\n\r\n{ASSIGNMENT}'
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"'
        "\r\nContent-Type: application/zip\r\n\r\n"
    ).encode()
    paths = ServicePaths(made.course_dir)
    uploads_before = sorted((paths.root / "uploads").iterdir())
    sent, answer = 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(_multipart_head(boundary, made.tokens["erin"], host) + _chunk(preamble))
        sock.setblocking(False)
        block = secrets.token_bytes(256 * 1024)
        while sent < 64 * 2**20:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.settimeout(30)
                sock.sendall(_chunk(block))
                sock.setblocking(False)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(block)
        sock.settimeout(30)  # a server that waits for the rest of the body: a timeout, no hang
        deadline = time.monotonic() + 30
        while b'"error"' not in answer and time.monotonic() < deadline:
            try:
                with_more = sock.recv(65536)
            except TimeoutError:
                break
            if not with_more:
                break
            answer += with_more
    print(f"413 after {sent / 2**20:.1f} MB of 64 MB offered")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than the limit of 2 MB" in answer
    assert sent < 16 * 2**20, f"the server read {sent / 2**20:.0f} MB before refusing"
    assert list(paths.incoming.iterdir()) == []
    assert sorted((paths.root / "uploads").iterdir()) == uploads_before

    with client(server.url, made.tokens["erin"]) as http:  # a declared size: refused at once
        answer = http.post(
            "/api/submissions",
            content=b"x" * (LIMIT_MB * 2**20 + 100 * 1024),
            headers={"Content-Type": "multipart/form-data; boundary=abc"},
        )
        assert answer.status_code == 413
        assert http.get("/api/submissions").json() == []


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_bombs_and_path_traversal_are_refused_and_nothing_is_unpacked(server, made):
    release_dir = made.course_dir / "release" / ASSIGNMENT
    good = cb.good_files(release_dir, made.models_good)
    gradings = ServicePaths(made.course_dir).root / "gradings"
    before = sorted(gradings.iterdir())
    cases = {
        "traversal.zip": (
            _zip({**good, "../../escaped.py": b"print(1)"}),
            "leads outside the folder",
        ),
        "absolute.zip": (_zip({**good, "/etc/evil.py": b"x"}), "absolute path"),
        "bomb.zip": (_zip({**good, "models/zeros.bin": bytes(70 * 2**20)}), "MB per file"),
        "ratio.zip": (_zip({**good, "data.bin": bytes(40 * 2**20)}), "zip bombs"),
    }
    with client(server.url, made.tokens["frank"]) as http:
        for name, (data, sentence) in cases.items():
            answer = http.post(
                "/api/submissions",
                data={"assignment": ASSIGNMENT},
                files={"file": (name, data, "application/zip")},
            )
            assert answer.status_code == 400, (name, answer.text)
            assert sentence in answer.json()["error"], (name, answer.json())
            assert answer.json()["error"].startswith(name)
        assert http.get("/api/submissions").json() == []
    assert sorted(gradings.iterdir()) == before
    assert not (made.course_dir / "escaped.py").exists()


# --- escaping, student code ----------------------------------------------------------------


def test_student_text_reaches_the_pages_escaped(server, made):
    name = "<img src=x onerror=alert(1)><script>alert(2)</script>.zip"
    with client(server.url, made.tokens["gina"]) as http:
        mine = upload(http, made.zips["model_missing"], name=name).json()["id"]
        result = wait_final(http, mine)
    assert result["file_name"] == name  # the API gives the text as it is (JSON)
    with _logged_in(server, made.tokens["prof"]) as (http, _):
        page = http.get("/").text
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;.zip" in page
    assert "<img src=x" not in page and "<script>alert" not in page
    script = (SERVICE / "static" / "app.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


MARKING_MODULE = """import os
try:
    open(os.path.join({folder!r}, "imported-by-%d" % os.getpid()), "w").close()
except OSError:
    pass


def answer():
    return 42
"""


def test_the_web_process_never_imports_or_runs_a_students_code(server, made, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    marks.chmod(0o777)
    release_dir = made.course_dir / "release" / ASSIGNMENT
    files = cb.good_files(release_dir, made.models_good)
    files["exercise_code/answer.py"] = MARKING_MODULE.format(folder=str(marks)).encode()
    data = _zip(files)
    with client(server.url, made.tokens["hank"]) as http:
        answer = http.post(
            "/api/submissions",
            data={"assignment": ASSIGNMENT},
            files={"file": ("marking.zip", data, "application/zip")},
        )
        assert answer.status_code == 202, answer.text
        result = wait_final(http, answer.json()["id"])
        http.get("/api/submissions")
        http.get("/")
    assert result["status"] == "graded"
    assert not (marks / f"imported-by-{server.pid}").exists(), sorted(marks.iterdir())
    forbidden = re.compile(
        r"^(autograder\.(grading|sandbox)|exercise_code|runpy|importlib|subprocess)(\.|$)"
    )
    for path in sorted(SERVICE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = ["autograder." + module.lstrip(".") if node.level == 2 else module]
            for name in names:
                assert not forbidden.match(name), f"{path.name} imports {name}"
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("exec", "eval"):
                raise AssertionError(f"{path.name} calls {node.func.id}")
