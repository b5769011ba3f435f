"""`storage_url` into blob stores: parsing, the AWS variables, and the start-up check
against a real SeaweedFS (a missing bucket, refused credentials, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from packyard.errors import ConfigurationError, StoreUnavailable
from packyard.settings import S3Settings, Settings
from packyard.storage.filesystem import FilesystemBlobStore
from packyard.storage.location import open_blob_storage, open_blob_store
from packyard.storage.s3 import S3BlobStore
from tests.seaweedfs import SeaweedServer, free_ports


def settings(tmp_path: Path, storage_url: str | None = None, **s3: Any) -> Settings:
    return Settings(data_dir=tmp_path, storage_url=storage_url, s3=S3Settings(**s3))


def test_no_storage_url_keeps_the_data_directory_layout(tmp_path: Path) -> None:
    storage = open_blob_storage(settings(tmp_path), environ={})
    files, cached = storage.store("files"), storage.store("cache/files")
    assert isinstance(files, FilesystemBlobStore)
    assert isinstance(cached, FilesystemBlobStore)
    assert (files.root, cached.root) == (tmp_path / "files", tmp_path / "cache" / "files")
    assert storage.store("files") is files


@pytest.mark.parametrize("url", ["file://", "file://localhost"])
def test_a_file_url_without_a_path_is_the_data_directory(tmp_path: Path, url: str) -> None:
    store = open_blob_store(settings(tmp_path, url), "files")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "files"


def test_a_file_url_names_another_directory(tmp_path: Path) -> None:
    store = open_blob_store(settings(tmp_path, f"file://{tmp_path}/blobs"), "cache/files")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "blobs" / "cache" / "files"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("gs://bucket/x", "unsupported scheme"),
        ("/srv/blobs", "unsupported scheme"),
        ("file://server/share", "names a host"),
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("s3://Bucket_1/x", "not a valid bucket name"),
        ("s3://ab/x", "not a valid bucket name"),
        ("s3://bucket/a/../b", "prefix"),
        ("s3://bucket/x?versioning=1", "query or fragment"),
    ],
)
def test_bad_storage_urls_are_refused_naming_the_setting(
    tmp_path: Path, url: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError, match="storage_url") as error:
        open_blob_storage(settings(tmp_path, url), environ={})
    assert problem in error.value.message


@pytest.mark.parametrize("area", ["", "../x", "/abs", "a//b"])
def test_an_unsafe_area_is_refused(tmp_path: Path, area: str) -> None:
    with pytest.raises(ConfigurationError, match="area"):
        open_blob_storage(settings(tmp_path), environ={}).store(area)


def test_s3_settings_come_from_the_file_first(tmp_path: Path) -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_REGION": "env-region",
        "AWS_ACCESS_KEY_ID": "env-key",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
    }
    config = settings(
        tmp_path,
        "s3://bucket/site/",
        endpoint_url="http://127.0.0.1:2",
        region="eu-west-1",
        access_key_id="key",
        secret_access_key="secret",
    )
    store = open_blob_storage(config, environ=environ).store("files")
    assert isinstance(store, S3BlobStore)
    assert (store.prefix, store.name) == ("site/files", "s3://bucket/site/files")
    assert store.client.config["endpoint"] == "http://127.0.0.1:2"
    assert store.client.config["region"] == "eu-west-1"
    assert store.client.config["access_key_id"] == "key"


def test_unset_s3_settings_come_from_the_aws_variables(tmp_path: Path) -> None:
    environ = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:3",
        "AWS_DEFAULT_REGION": "ap-south-1",
        "AWS_ACCESS_KEY_ID": "env-key",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
    }
    storage = open_blob_storage(settings(tmp_path, "s3://bucket"), environ=environ)
    store = storage.store("files")
    assert isinstance(store, S3BlobStore)
    assert (store.prefix, storage.url) == ("files", "s3://bucket")
    assert store.client.config["endpoint"] == "http://127.0.0.1:3"  # the S3-specific one wins
    assert store.client.config["region"] == "ap-south-1"
    assert store.client.config["access_key_id"] == "env-key"


def test_the_secret_may_be_read_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    config = settings(
        tmp_path,
        "s3://bucket",
        endpoint_url="http://127.0.0.1:1",
        access_key_id="key",
        secret_access_key_file=secret,
    )
    store = open_blob_storage(config, environ={}).store("files")
    assert isinstance(store, S3BlobStore)
    assert store.client.config["secret_access_key"] == "from-file"


@pytest.mark.parametrize(
    ("s3", "setting"),
    [
        ({"access_key_id": "key"}, "secret_access_key"),
        ({"secret_access_key": "secret"}, "access_key_id"),
        ({"secret_access_key_file": Path("/nonexistent/secret")}, "secret_access_key_file"),
        (
            {"secret_access_key": "s", "secret_access_key_file": Path("/nonexistent")},
            "secret_access_key_file",
        ),
        ({"endpoint_url": "127.0.0.1:8333"}, "endpoint_url"),
    ],
)
def test_bad_s3_settings_are_refused_naming_the_setting(
    tmp_path: Path, s3: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"\[s3\]") as error:
        open_blob_storage(settings(tmp_path, "s3://bucket", **s3), environ={})
    assert setting in error.value.message


@pytest.mark.anyio
async def test_the_check_makes_the_directory_and_ping_finds_it(tmp_path: Path) -> None:
    storage = open_blob_storage(settings(tmp_path / "data"), environ={})
    with pytest.raises(StoreUnavailable, match="does not exist"):
        await storage.ping()
    await storage.check()
    await storage.ping()
    assert (tmp_path / "data").is_dir()


@pytest.mark.anyio
async def test_the_check_refuses_a_directory_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    storage = open_blob_storage(settings(tmp_path, f"file://{tmp_path}/file/x"), environ={})
    with pytest.raises(ConfigurationError, match="storage_url"):
        await storage.check()


@pytest.mark.anyio
async def test_the_check_passes_for_a_bucket_that_takes_our_keys(
    s3_server: SeaweedServer, tmp_path: Path
) -> None:
    with s3_server.bucket() as bucket:
        config = Settings(
            data_dir=tmp_path, storage_url=f"s3://{bucket}/p", s3=s3_server.s3_settings()
        )
        storage = open_blob_storage(config, environ={})
        await storage.check()
        await storage.ping()


@pytest.mark.anyio
async def test_the_check_refuses_a_bucket_that_does_not_exist(
    s3_server: SeaweedServer, tmp_path: Path
) -> None:
    config = Settings(
        data_dir=tmp_path, storage_url="s3://no-such-bucket/p", s3=s3_server.s3_settings()
    )
    with pytest.raises(ConfigurationError, match="storage_url") as error:
        await open_blob_storage(config, environ={}).check()
    assert "'no-such-bucket' does not exist" in error.value.message


@pytest.mark.anyio
@pytest.mark.parametrize("wrong", ["access_key_id", "secret_access_key"])
async def test_the_check_refuses_wrong_credentials_naming_the_settings(
    s3_server: SeaweedServer, tmp_path: Path, wrong: str
) -> None:
    with s3_server.bucket() as bucket:
        config = Settings(
            data_dir=tmp_path,
            storage_url=f"s3://{bucket}",
            s3=s3_server.s3_settings(**{wrong: "wrong"}),
        )
        storage = open_blob_storage(config, environ={})
        with pytest.raises(ConfigurationError, match="refused the credentials") as error:
            await storage.check()
        for name in ("[s3]", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert name in error.value.message
        with pytest.raises(StoreUnavailable):
            await storage.ping()


@pytest.mark.anyio
async def test_the_check_reports_a_store_that_does_not_answer(tmp_path: Path) -> None:
    (port,) = free_ports(1)  # nothing listens there
    config = settings(
        tmp_path,
        "s3://bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="key",
        secret_access_key="secret",
    )
    with pytest.raises(StoreUnavailable, match="s3://bucket is unavailable") as error:
        await open_blob_storage(config, environ={}).check()
    assert "endpoint_url" in error.value.message
