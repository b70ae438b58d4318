"""The moto we test against makes conditional writes atomic, as S3 and DynamoDB do."""

from __future__ import annotations

import threading

import boto3
from botocore.exceptions import ClientError
from ccstate.sandbox.moto_server import running_moto


def test_only_one_of_many_racing_if_none_match_puts_wins() -> None:
    with running_moto() as moto:
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
        s3.create_bucket(Bucket="race")
        for round_no in range(20):
            wins: list[int] = []
            start = threading.Barrier(8)

            def put(
                worker: int,
                key: str = f"k{round_no}",
                wins: list[int] = wins,
                start: threading.Barrier = start,
            ) -> None:
                start.wait()
                try:
                    s3.put_object(Bucket="race", Key=key, Body=b"x", IfNoneMatch="*")
                    wins.append(worker)
                except ClientError as exc:
                    assert exc.response["Error"]["Code"] in (
                        "PreconditionFailed",
                        "ConditionalRequestConflict",
                    )

            threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(wins) == 1, f"round {round_no}: {len(wins)} writers won"
