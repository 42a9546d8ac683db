"""data_prep.download and ``har download``, against a loopback HTTP server (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_prep.archive import find_zip_recordings
from data_prep.download import download_pamap2
from harkit import __version__
from harkit.errors import HarError
from tests.conftest import assert_umask_modes
from tests.test_archive import corrupt, dataset_files, listing, nested_zip, zip_bytes

UCI_NAME = "pamap2+physical+activity+monitoring.zip"
ROOT = Path(__file__).resolve().parents[1]


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (status, body, headers)``; counts requests."""

    def do_GET(self):
        self.server.hits.append(self.path)
        status, body, headers = self.server.routes.get(self.path, (404, b"not found", {}))
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), "Content-Type": "application/zip"} | headers
        for key, value in headers.items():
            if value is not None:                    # None: leave the header out
                self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A loopback HTTP server; ``server.url(path)``, ``server.routes``, ``server.hits``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.hits = {}, []
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def files(tmp_path):
    return dataset_files(tmp_path)


def serve(server, data: bytes, path: str = f"/static/{UCI_NAME}", **headers) -> str:
    server.routes[path] = (200, data, headers)
    return server.url(path)


def assert_clean(dest: Path, expected=()):
    """Nothing but ``expected`` in dest: no .partial, no hidden staging or half a dataset."""
    assert sorted(os.listdir(dest)) == sorted(expected)


# --------------------------------------------------------------------------- success
@pytest.mark.parametrize("inner", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_download_extracts_and_writes_manifest(server, tmp_path, files, inner):
    archive = nested_zip(files, inner=inner)
    url = serve(server, archive)
    dest = tmp_path / "raw"
    manifest = download_pamap2(dest, url=url)

    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert_clean(dest, [UCI_NAME, "manifest.json", "PAMAP2_Dataset"])
    assert (dest / UCI_NAME).read_bytes() == archive                  # archive kept
    assert manifest["dataset_dir"] == str(dest / "PAMAP2_Dataset")
    assert manifest["archive_path"] == str(dest / UCI_NAME)
    assert manifest["size"] == len(archive)
    assert manifest["sha256"] == hashlib.sha256(archive).hexdigest()
    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk["url"] == url and on_disk["archive"] == UCI_NAME
    assert on_disk["dataset_dir"] == "PAMAP2_Dataset" and on_disk["recordings"] == 3
    assert on_disk["harkit_version"] == __version__
    assert datetime.fromisoformat(on_disk["downloaded_at"]).utcoffset().total_seconds() == 0
    assert (on_disk["size"], on_disk["sha256"]) == (manifest["size"], manifest["sha256"])
    # the kept archive is readable in place by the prepare stage
    recs = find_zip_recordings(dest / UCI_NAME)
    assert sorted(r.member for r in recs) == sorted(m for m in files if m.endswith(".dat"))


def test_downloaded_files_get_the_umask_mode(server, tmp_path, files, umask_002):
    dest = tmp_path / "raw"
    download_pamap2(dest, url=serve(server, nested_zip(files)))
    assert_umask_modes(*dest.iterdir(), *(dest / "PAMAP2_Dataset").rglob("*"))


def test_download_follows_redirects(server, tmp_path, files):
    url = serve(server, nested_zip(files))
    server.routes["/moved"] = (302, b"", {"Location": url})
    manifest = download_pamap2(tmp_path / "raw", url=server.url("/moved"))
    assert server.hits == ["/moved", f"/static/{UCI_NAME}"]
    assert manifest["final_url"] == url
    assert (tmp_path / "raw/PAMAP2_Dataset/Protocol/subject102.dat").exists()


@pytest.mark.parametrize("prefix", ["", "mirror/"])
def test_download_without_dataset_folder(server, tmp_path, files, prefix):
    flat = {f"{prefix}{k.split('/', 1)[1]}": v for k, v in files.items()}  # Protocol/ at top
    download_pamap2(tmp_path / "raw", url=serve(server, zip_bytes(flat), "/pamap2.zip"))
    for name, data in files.items():
        assert (tmp_path / "raw" / name).read_bytes() == data
    assert_clean(tmp_path / "raw", ["pamap2.zip", "manifest.json", "PAMAP2_Dataset"])


def test_download_bare_subject_files_go_to_protocol(server, tmp_path):
    data = zip_bytes({"subject101.dat": b"1\n", "subject102.dat": b"2\n"})
    download_pamap2(tmp_path / "raw", url=serve(server, data, "/get?id=231"))
    assert (tmp_path / "raw/PAMAP2_Dataset/Protocol/subject102.dat").read_bytes() == b"2\n"
    assert (tmp_path / "raw/pamap2.zip").exists()                     # fallback archive name


class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("length", ["known", "unknown"])
def test_progress_on_a_terminal(server, tmp_path, files, monkeypatch, length):
    monkeypatch.setattr(sys, "stderr", _FakeTTY())
    headers = {} if length == "known" else {"Content-Length": None}
    manifest = download_pamap2(tmp_path / "raw", url=serve(server, nested_zip(files), **headers),
                               progress=True)
    assert manifest["size"] == len(nested_zip(files))
    drawn = sys.stderr.getvalue()
    assert f"downloading {UCI_NAME}" in drawn
    if length == "unknown":
        assert drawn.endswith(" MB\n")


def test_url_may_be_a_local_file(tmp_path, files):
    archive = tmp_path / "fetched by hand" / "PAMAP2 copy.zip"
    archive.parent.mkdir()
    archive.write_bytes(nested_zip(files))
    manifest = download_pamap2(tmp_path / "raw", url=str(archive))
    assert manifest["url"].startswith("file://") and manifest["archive"] == "pamap2.zip"
    assert (tmp_path / "raw/PAMAP2_Dataset/Optional/subject101.dat").exists()


def test_bad_destination_and_url(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(HarError, match="is a file; pass a folder"):
        download_pamap2(tmp_path / "file", url="http://127.0.0.1:9/x.zip")
    with pytest.raises(HarError, match="'nonsense' is neither a URL nor an existing file"):
        download_pamap2(tmp_path / "raw", url="nonsense")
    assert_clean(tmp_path / "raw")


def test_already_downloaded_is_a_noop_and_force_replaces(server, tmp_path, files):
    url = serve(server, nested_zip(files))
    dest = tmp_path / "raw"
    first = download_pamap2(dest, url=url)
    assert download_pamap2(dest, url=url) == first and len(server.hits) == 1

    files2 = dict(files)
    del files2["PAMAP2_Dataset/Protocol/subject102.dat"]
    files2["PAMAP2_Dataset/Protocol/subject105.dat"] = b"5\n"
    serve(server, nested_zip(files2))
    second = download_pamap2(dest, url=url, force=True)
    assert len(server.hits) == 2 and second["sha256"] != first["sha256"]
    assert not (dest / "PAMAP2_Dataset/Protocol/subject102.dat").exists()
    assert (dest / "PAMAP2_Dataset/Protocol/subject105.dat").read_bytes() == b"5\n"
    assert json.loads((dest / "manifest.json").read_text())["sha256"] == second["sha256"]
    assert_clean(dest, [UCI_NAME, "manifest.json", "PAMAP2_Dataset"])


def test_existing_dataset_without_manifest_needs_force(server, tmp_path, files):
    (tmp_path / "raw/PAMAP2_Dataset/Protocol").mkdir(parents=True)
    with pytest.raises(HarError, match="--force"):
        download_pamap2(tmp_path / "raw", url=serve(server, nested_zip(files)))
    assert server.hits == []


def test_failed_force_keeps_the_previous_download(server, tmp_path, files):
    url = serve(server, nested_zip(files))
    dest = tmp_path / "raw"
    download_pamap2(dest, url=url)
    before = listing(dest)
    serve(server, nested_zip(files)[:-500])
    with pytest.raises(HarError):
        download_pamap2(dest, url=url, force=True)
    assert listing(dest) == before


# --------------------------------------------------------------------------- failures
def test_http_404(server, tmp_path):
    url = server.url("/missing.zip")
    with pytest.raises(HarError) as info:
        download_pamap2(tmp_path / "raw", url=url)
    message = str(info.value)
    assert url in message and "404" in message and "--url" in message and "\n" not in message
    assert_clean(tmp_path / "raw")


def test_unreachable_url(tmp_path):
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(HarError, match=rf"could not reach http://127.0.0.1:{port}/x.zip .*--url"):
        download_pamap2(tmp_path / "raw", url=f"http://127.0.0.1:{port}/x.zip")


def test_truncated_body(server, tmp_path, files):
    archive = nested_zip(files)
    url = serve(server, archive[:1000], **{"Content-Length": str(len(archive))})
    with pytest.raises(HarError, match=rf"truncated: got 1,000 of {len(archive):,} bytes; "
                                       "try again"):
        download_pamap2(tmp_path / "raw", url=url)
    assert_clean(tmp_path / "raw")


@pytest.mark.parametrize("kind, match", [
    ("html", r"did not return a zip or tar archive \(Content-Type text/html"),
    ("crc", r"is corrupt or truncated \(PAMAP2_Dataset.zip!.*Bad CRC"),
    ("cut", "is corrupt or truncated"),
    ("evil", r"unsafe member 'PAMAP2_Dataset.zip!../evil.dat'"),
    ("absolute", r"unsafe member '/etc/evil.dat' \(an absolute path\)"),
    ("empty", r"holds no subject\*.dat files"),
])
def test_bad_archives_leave_nothing(server, tmp_path, files, kind, match):
    archive = {
        "html": lambda: b"<html>Please log in</html>",
        "crc": lambda: zip_bytes({"PAMAP2_Dataset.zip": corrupt(
            zip_bytes(files, zipfile.ZIP_STORED), b"miniature")}, zipfile.ZIP_STORED),
        "cut": lambda: zip_bytes(files)[:-30],
        "evil": lambda: nested_zip({**files, "../evil.dat": b"pwned"}),
        "absolute": lambda: zip_bytes({**files, "/etc/evil.dat": b"pwned"}),
        "empty": lambda: zip_bytes({"readme.txt": b"nothing here"}),
    }[kind]()
    ctype = {"Content-Type": "text/html"} if kind == "html" else {}
    url = serve(server, archive, **ctype)
    with pytest.raises(HarError, match=match) as info:
        download_pamap2(tmp_path / "raw", url=url)
    assert "\n" not in str(info.value)
    assert_clean(tmp_path / "raw")
    assert not list(tmp_path.rglob("evil.dat"))


# --------------------------------------------------------------------------- CLI
def test_cli_download_and_bad_url(server, tmp_path, files, run_cli):
    url = serve(server, nested_zip(files))
    code, out, err = run_cli("download", "pamap2", tmp_path / "raw", "--url", url)
    assert code == 0 and str(tmp_path / "raw" / "PAMAP2_Dataset") in out and err == ""

    code, out, err = run_cli("download", "pamap2", tmp_path / "raw2", "--url",
                             server.url("/nope.zip"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("har: error: could not download")
    assert "HTTP 404" in err and "--url" in err


def test_cli_subprocess_one_line_error(server, tmp_path):
    url = server.url("/nope.zip")
    proc = subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", "download", "pamap2",
         str(tmp_path / "raw"), "--url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert url in proc.stderr and "404" in proc.stderr


# --------------------------------------------------------------------------- other datasets
def _tar_gz(members: dict, links=()) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


WISDM_TEXT = b"1,Walking,1000000000,1.5,2.5,3.5;\n1,Walking,1050000000,1.6,2.6,3.6;\n"


def test_wisdm_tar_gz_is_extracted_and_prepared(server, tmp_path):
    from data_prep.download import download

    archive = _tar_gz({"WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt": WISDM_TEXT,
                       "WISDM_ar_v1.1/readme.txt": b"readme"})
    url = serve(server, archive, "/datasets/latest/WISDM_ar_latest.tar.gz",
                **{"Content-Type": "application/x-gzip"})
    manifest = download("wisdm", tmp_path / "raw", url=url)
    assert manifest["dataset"] == "wisdm" and manifest["recordings"] == 1
    assert manifest["sha256"] == hashlib.sha256(archive).hexdigest()
    assert (tmp_path / "raw/WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt").read_bytes() == WISDM_TEXT
    assert_clean(tmp_path / "raw", ["WISDM_ar_latest.tar.gz", "WISDM_ar_v1.1", "manifest.json"])


@pytest.mark.parametrize("kind, match", [
    ("traversal", "would land outside the destination"),
    ("symlink", "holds a link"),
    ("cut", "is corrupt or truncated"),
    ("wrong", r"holds no WISDM_ar_v1.1_raw.txt \(is it the wisdm data set\?\)"),
])
def test_bad_tar_archives_leave_nothing(server, tmp_path, kind, match):
    from data_prep.download import download

    good = {"WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt": WISDM_TEXT}
    archive = {
        "traversal": lambda: _tar_gz({**good, "../../evil.txt": b"pwned"}),
        "symlink": lambda: _tar_gz(good, links=[("WISDM_ar_v1.1/x", "/etc/passwd")]),
        "cut": lambda: _tar_gz(good)[:-40],
        "wrong": lambda: _tar_gz({"MHEALTHDATASET/mHealth_subject1.log": b"1\t2\n"}),
    }[kind]()
    url = serve(server, archive, "/w.tar.gz")
    with pytest.raises(HarError, match=match) as info:
        download("wisdm", tmp_path / "raw", url=url)
    assert "\n" not in str(info.value)
    assert_clean(tmp_path / "raw")
    assert not list(tmp_path.rglob("evil.txt"))


def test_uci_har_nested_zip_and_mhealth_zip(server, tmp_path, run_cli):
    inner = zip_bytes({"UCI HAR Dataset/train/y_train.txt": b"1\n",
                       "UCI HAR Dataset/activity_labels.txt": b"1 WALKING\n"})
    url = serve(server, zip_bytes({"UCI HAR Dataset.zip": inner, "__MACOSX/._x": b""}),
                "/static/public/240/human+activity+recognition+using+smartphones.zip")
    code, out, err = run_cli("download", "uci_har", tmp_path / "uci", "--url", url)
    assert code == 0, err
    assert (tmp_path / "uci/UCI HAR Dataset/train/y_train.txt").read_bytes() == b"1\n"
    flat = zip_bytes({f"MHEALTHDATASET/mHealth_subject{i}.log": b"0\t1\n" for i in (1, 2)})
    code, out, err = run_cli("download", "mhealth", tmp_path / "mh", "--url",
                             serve(server, flat, "/m.zip"))
    assert code == 0, err
    manifest = json.loads((tmp_path / "mh/manifest.json").read_text())
    assert manifest["recordings"] == 2 and manifest["dataset_dir"] == "MHEALTHDATASET"
