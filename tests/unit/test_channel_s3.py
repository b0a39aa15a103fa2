"""Publishing to S3 through py-rattler's index_s3, against a local S3-compatible
server (moto's, on loopback): immutable uploads, concurrent publishers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from ftforge.channel.s3 import publish_s3
from ftforge.channel.synthetic import write_package
from ftforge.errors import ChannelError

from ..servers import free_port
from .test_channel_publish import noarch


@pytest.fixture
def s3(monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    bucket = f"channels-{port}"  # moto keeps state per process: one bucket per test
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    server.stop()


def _repodata(s3) -> dict:
    client, bucket = s3
    body = client.get_object(Bucket=bucket, Key="ft/noarch/repodata.json")["Body"].read()
    return json.loads(body)


def test_publish_to_s3_indexes_and_is_immutable(s3, tmp_path):
    first = write_package(noarch("alpha"), tmp_path / "a")
    result = publish_s3([first], f"s3://{s3[1]}/ft")
    assert [p.name for p in result.added] == [first.name]
    assert first.name in _repodata(s3)["packages.conda"]
    again = publish_s3([first], f"s3://{s3[1]}/ft")
    assert again.added == [] and [p.name for p in again.unchanged] == [first.name]
    other = write_package(noarch("alpha", payload=b"# other\n"), tmp_path / "b")
    with pytest.raises(ChannelError, match="already published with different content"):
        publish_s3([other], f"s3://{s3[1]}/ft")


def test_concurrent_s3_publishers_lose_nothing(s3, tmp_path):
    batches = [[write_package(noarch(f"p{b}-{i}"), tmp_path / f"b{b}") for i in range(3)]
               for b in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda batch: publish_s3(batch, f"s3://{s3[1]}/ft"), batches))
    publish_s3([], f"s3://{s3[1]}/ft")  # a last index pass sees every upload
    assert set(_repodata(s3)["packages.conda"]) == {p.name for b in batches for p in b}


def test_s3_publish_refuses_a_free_threaded_build_without_its_gil_twin(s3, tmp_path):
    from ftforge.channel.audit import PackageRefused
    from ftforge.channel.synthetic import SyntheticPackage
    from ftforge.variants import PythonVariant

    def ext(variant):
        return SyntheticPackage(
            "ext", "1.0", variant.extension_build_string("abcdef0", 0), subdir="linux-64",
            depends=[variant.python_abi_spec],
            files={f"{variant.site_packages}/ext/__init__.py": b""})

    ft = write_package(ext(PythonVariant.ft("3.13")), tmp_path / "ft")
    gil = write_package(ext(PythonVariant.gil("3.13")), tmp_path / "gil")
    with pytest.raises(PackageRefused, match=r"\[channel.variant-incomplete\]"):
        publish_s3([ft], f"s3://{s3[1]}/ft")
    client, bucket = s3
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0, "nothing uploaded"
    publish_s3([gil], f"s3://{s3[1]}/ft")
    publish_s3([ft], f"s3://{s3[1]}/ft")  # the bucket's index has its twin now
