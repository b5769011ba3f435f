"""A replica's life as an orchestrator sees it: roles, migrations as a step,
readiness, and a graceful stop, on real `packyard` processes.

Each test starts its own servers: they differ in their flags.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.builders import build_wheel
from tests.e2e.servers import PYTHON, PackyardProcess, clean_environment, packyard
from tests.postgres import PostgresServer
from tests.seaweedfs import SeaweedServer

pytestmark = pytest.mark.e2e


def with_flags(server: PackyardProcess, *flags: str) -> PackyardProcess:
    server.argv += flags
    return server


def test_each_role_serves_its_own_paths_and_names_itself_elsewhere(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    wheel = build_wheel(dists, "acme-roles", "1.0")
    index = with_flags(PackyardProcess(tmp_path / "data"), "--role", "index")
    assert index.import_dir(dists).returncode == 0
    upload = with_flags(PackyardProcess(tmp_path / "data"), "--role", "upload", "--no-migrate")
    browser = with_flags(PackyardProcess(tmp_path / "data"), "--role", "browser", "--no-migrate")
    with index, upload, browser:
        assert wheel.name in httpx.get(index.index_url + "acme-roles/").text
        assert httpx.get(f"{index.url}/files/acme-roles/{wheel.name}").content == wheel.read_bytes()
        refused = httpx.get(index.url + "/project/acme-roles/")
        assert refused.status_code == 404
        assert "serves the index role only" in refused.text

        assert httpx.get(upload.url + "/api/v1/openapi.json").status_code == 200
        assert httpx.post(upload.url + "/legacy/").status_code in (400, 401, 403)
        assert httpx.get(upload.url + "/simple/").status_code == 404

        assert "acme-roles" in httpx.get(browser.url + "/project/acme-roles/").text
        assert httpx.get(browser.url + "/legacy/").status_code == 404
        for server in (index, upload, browser):
            assert httpx.get(server.url + "/healthz").status_code == 200
            assert httpx.get(server.url + "/readyz").status_code == 200


def test_without_migrations_the_server_is_alive_but_not_ready_until_migrate(
    tmp_path: Path,
) -> None:
    server = with_flags(PackyardProcess(tmp_path / "data"), "--no-migrate")
    with server:
        assert httpx.get(server.url + "/healthz").status_code == 200
        waiting = httpx.get(server.url + "/readyz")
        assert waiting.status_code == 503
        assert "run packyard migrate" in waiting.json()["reasons"]["database"]

        done = packyard("migrate", "--data-dir", str(server.data_dir))
        assert done.returncode == 0, done.stderr
        assert "Migrated the schema to revision " in done.stdout
        assert "(applied 0001, 0002," in done.stdout
        assert httpx.get(server.url + "/readyz").status_code == 200
    again = packyard("migrate", "--data-dir", str(server.data_dir))
    assert "The schema is up to date" in again.stdout


def test_many_replicas_migrating_at_once_never_race(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with postgres_server.database() as url:
        env = clean_environment(PACKYARD_DATABASE_URL=url)
        command = [PYTHON, "-m", "packyard", "migrate", "--data-dir", str(tmp_path / "data")]
        runs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        results = [(run.wait(120), run.communicate()) for run in runs]
        assert [code for code, _ in results] == [0, 0, 0, 0], results
        migrated = [out for _, (out, _) in results if b"Migrated the schema" in out]
        assert len(migrated) == 1, results


def test_sigterm_lets_a_download_in_flight_finish(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    payload = os.urandom(48 * 1024 * 1024)
    wheel = build_wheel(dists, "acme-big", "1.0", extra_files={"acme_big/blob.bin": payload})
    server = PackyardProcess(tmp_path / "data")
    assert server.import_dir(dists).returncode == 0
    received = hashlib.sha256()
    size = 0
    with server:
        assert server.process is not None
        with httpx.stream("GET", f"{server.url}/files/acme-big/{wheel.name}") as response:
            chunks = response.iter_bytes(256 * 1024)
            first = next(chunks)
            received.update(first)
            size += len(first)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the server has begun to stop: it no longer accepts
            with pytest.raises(httpx.TransportError):
                httpx.get(server.url + "/healthz", timeout=2)
            for chunk in chunks:
                received.update(chunk)
                size += len(chunk)
                time.sleep(0.002)  # a slow client
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert size == wheel.stat().st_size
    assert received.hexdigest() == hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_verify_after_a_restore_names_each_missing_or_damaged_blob(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    wheel = build_wheel(dists, "acme-restored", "1.0")
    server = PackyardProcess(tmp_path / "data")
    assert server.import_dir(dists).returncode == 0
    good = packyard("verify", "--data-dir", str(server.data_dir))
    assert good.returncode == 0, good.stderr
    assert "All 2 blobs in file://" in good.stdout

    # A restore that lost the wheel's blob: the database still lists it.
    (blob,) = (server.data_dir / "files").rglob(wheel.name)
    blob.unlink()
    bad = packyard("verify", "--data-dir", str(server.data_dir))
    assert bad.returncode == 1
    assert f"missing: {wheel.name} (blob " in bad.stdout
    assert "1 of 2 blobs in file://" in bad.stdout


def test_a_wrong_bucket_or_key_stops_serve_at_start_naming_the_setting(
    tmp_path: Path, s3_server: SeaweedServer
) -> None:
    with s3_server.bucket() as bucket:
        missing = clean_environment(**s3_server.environment("no-such-bucket-here"))
        result = packyard("serve", "--data-dir", str(tmp_path / "a"), env=missing)
        assert result.returncode != 0
        assert "storage_url" in result.stderr, result.stderr
        assert "no-such-bucket-here" in result.stderr

        wrong_key = {**s3_server.environment(bucket), "AWS_SECRET_ACCESS_KEY": "not-the-key"}
        result = packyard(
            "serve", "--data-dir", str(tmp_path / "b"), env=clean_environment(**wrong_key)
        )
        assert result.returncode != 0
        assert "AWS_SECRET_ACCESS_KEY" in result.stderr or "[s3]" in result.stderr, result.stderr


def test_after_losing_every_database_connection_a_replica_recovers_and_catches_up(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """What a database restart or failover does to a replica: every connection
    dies, and changes made meanwhile are never notified to it."""
    dists = tmp_path / "dists"
    dists.mkdir()
    first = build_wheel(dists, "acme-failover", "1.0")
    with postgres_server.database() as url:
        server = PackyardProcess(tmp_path / "data", database_url=url)
        assert server.import_dir(dists).returncode == 0
        with server:
            assert first.name in httpx.get(server.index_url + "acme-failover/").text
            database = url.rsplit("/", 1)[1]
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
            later = tmp_path / "later"
            later.mkdir()
            second = build_wheel(later, "acme-failover", "2.0")
            assert server.import_dir(later).returncode == 0  # while the listener reconnects

            deadline = time.monotonic() + 10
            page = ""
            while time.monotonic() < deadline and second.name not in page:
                response = httpx.get(server.index_url + "acme-failover/")
                assert response.status_code in (200, 503), response.text
                page = response.text
                time.sleep(0.05)
            assert second.name in page
            assert httpx.get(server.url + "/readyz").status_code == 200
