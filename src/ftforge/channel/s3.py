"""Publish to a channel in an S3 bucket: the same audit and invariant checks as a
directory publish, then py-rattler's ``index_s3``.

Packages are uploaded with a conditional write (``If-None-Match: *``), so a
file name is written once even with several publishers; a name that exists
with other content is refused (its sha256 is kept in the object's metadata).
``index_s3``'s precondition checks make concurrent indexers safe. What is
audited is what is uploaded (private copies); variant completeness is checked
against the bucket's current index. Not (yet) on S3: recipe ownership and
burned names of removed packages -- there is no S3 removal.

Endpoint and credentials come from the standard variables
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``), as for any S3 tool.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ChannelError
from .layout import SUBDIRS
from .publish import PublishResult, audit_or_refuse

__all__ = ["publish_s3"]


def _split(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ChannelError(f"'{url}': expected s3://BUCKET/PATH", hint="e.g. s3://my-bucket/ft")
    return parsed.netloc, parsed.path.strip("/")


def _endpoint() -> tuple[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise ChannelError("AWS_ENDPOINT_URL is not set",
                           hint="export AWS_ENDPOINT_URL (and AWS_REGION, AWS_ACCESS_KEY_ID, "
                           "AWS_SECRET_ACCESS_KEY) for the S3 service")
    return endpoint, os.environ.get("AWS_REGION", "us-east-1")


def publish_s3(packages: Iterable[Path], url: str, *,
               progress: Callable[[str], None] | None = None) -> PublishResult:
    import boto3
    from botocore.exceptions import ClientError
    from rattler.index import S3Credentials, index_s3

    say = progress or (lambda _msg: None)
    bucket, prefix = _split(url)
    endpoint, region = _endpoint()
    packages = [Path(p) for p in packages]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    with tempfile.TemporaryDirectory(prefix="ftforge-s3-") as tmp:
        # what is audited is exactly what is uploaded: private copies, read once each
        staged = []
        for n, pkg in enumerate(packages):
            if not pkg.is_file():
                raise ChannelError(f"{pkg}: not a regular file",
                                   hint="publish the .conda files `ftforge build` wrote")
            (Path(tmp) / str(n)).mkdir()
            staged.append(Path(tmp) / str(n) / pkg.name)
            shutil.copyfile(pkg, staged[-1])
        reports = audit_or_refuse(staged, url, shown_as=packages, progress=say,
                                  existing=_bucket_records(s3, bucket, prefix))
        added, unchanged = _upload(s3, bucket, prefix, reports, staged, say, ClientError)
    say(f"indexing {url}")
    credentials = S3Credentials(
        endpoint_url=endpoint, region=region,
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        addressing_style="path")
    asyncio.run(index_s3(f"s3://{bucket}/{prefix}".rstrip("/"), credentials=credentials,
                         write_zst=True, write_shards=True, precondition_checks=True))
    return PublishResult(added, unchanged, reports)


def _bucket_records(s3, bucket: str, prefix: str) -> list[dict]:  # noqa: ANN001
    """The records already in the bucket's index (for variant completeness)."""
    import json

    records = []
    for subdir in SUBDIRS:
        key = "/".join(p for p in (prefix, subdir, "repodata.json") if p)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            data = json.loads(body)
        except Exception:  # no index yet for this subdir (or unreadable: nothing to rely on)
            continue
        for group in ("packages", "packages.conda"):
            entries = data.get(group) if isinstance(data, dict) else None
            for fn, record in (entries.items() if isinstance(entries, dict) else ()):
                if isinstance(record, dict):
                    records.append({**record, "fn": fn, "subdir": subdir})
    return records


def _upload(s3, bucket, prefix, reports, staged, say, ClientError):  # noqa: ANN001, ANN202, N803
    added, unchanged = [], []
    for report, copy in zip(reports, staged):
        record = report.record
        key = "/".join(p for p in (prefix, record.subdir, record.filename) if p)
        say(f"uploading {record.filename}")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=copy.read_bytes(),
                          IfNoneMatch="*", Metadata={"sha256": record.sha256})
            added.append(Path(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise ChannelError(f"s3://{bucket}/{key}: upload failed: {exc}",
                                   hint="check the bucket, endpoint and credentials") from None
            existing = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256")
            if existing != record.sha256:
                raise ChannelError(
                    f"s3://{bucket}/{key} is already published with different content",
                    hint="published packages are immutable: bump the build number and rebuild",
                ) from None
            unchanged.append(Path(key))
    return added, unchanged
