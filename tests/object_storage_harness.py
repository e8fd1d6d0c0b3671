"""A throwaway S3-compatible server on loopback (moto's server, from PyPI) with a bucket for
the lakes' files, and the environment that points the mesh at it.

Also usable by hand::

    .venv/bin/python tests/object_storage_harness.py    # prints the environment, stops on Ctrl-C
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

START_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ObjectStorage:
    """A running server: the mesh's environment for it, and a client to look in the bucket."""

    env: dict[str, str]
    client: Any
    bucket: str

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@contextmanager
def object_storage(bucket: str = "mesh-lakes") -> Iterator[ObjectStorage]:
    """Start the server, create ``bucket``; yield it with the mesh's environment for it."""
    port = _free_port()
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "MESH_LAKE_DATA_URL": f"s3://{bucket}/mesh",
        "MESH_S3_ENDPOINT": f"127.0.0.1:{port}",
        "MESH_S3_URL_STYLE": "path",
        "MESH_S3_USE_SSL": "false",
        "AWS_ACCESS_KEY_ID": "mesh-test",
        "AWS_SECRET_ACCESS_KEY": "mesh-test-secret",
        "AWS_REGION": "us-east-1",
    }
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield ObjectStorage(env, client, bucket)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    with object_storage() as storage:
        for key, value in storage.env.items():
            print(f"export {key}={value}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
