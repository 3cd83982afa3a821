"""Self-test of ecr_behaviours.py: DescribeImages pages and filters by tag
status as the ECR API Reference describes, through a launched emulator.

Run with: .venv/bin/python -m pytest tests/emulator -q
"""

from __future__ import annotations

import json
import uuid

import botocore.exceptions
import pytest

from test_ecs_behaviours import client, emulator  # noqa: F401  (the fixture)


def _manifest(salt: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": f"sha256:{uuid.uuid5(uuid.NAMESPACE_OID, salt).hex * 2}"},
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 2,
                    "digest": f"sha256:{uuid.uuid5(uuid.NAMESPACE_URL, salt).hex * 2}",
                }
            ],
        }
    )


@pytest.fixture
def repository(emulator):  # noqa: F811
    ecr = client(emulator, "ecr")
    name = f"pages-{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=name)
    return ecr, name


def test_every_tagged_image_comes_back_over_pages_of_max_results(repository):
    ecr, name = repository
    for i in range(7):
        ecr.put_image(repositoryName=name, imageManifest=_manifest(f"{name}-{i}"), imageTag=f"1.0.{i}")
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = ecr.describe_images(repositoryName=name, filter={"tagStatus": "TAGGED"}, maxResults=3, **kwargs)
        pages += 1
        assert len(page["imageDetails"]) <= 3
        seen += [tag for detail in page["imageDetails"] for tag in detail["imageTags"]]
        token = page.get("nextToken")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == [f"1.0.{i}" for i in range(7)]


def test_without_max_results_a_page_holds_at_most_100_images(repository):
    ecr, name = repository
    for i in range(101):
        ecr.put_image(repositoryName=name, imageManifest=_manifest(f"{name}-{i}"), imageTag=f"t{i}")
    first = ecr.describe_images(repositoryName=name)
    assert len(first["imageDetails"]) == 100 and first.get("nextToken")
    rest = ecr.describe_images(repositoryName=name, nextToken=first["nextToken"])
    assert len(rest["imageDetails"]) == 1 and not rest.get("nextToken")


def test_the_tag_status_filter_leaves_out_untagged_images(repository):
    ecr, name = repository
    ecr.put_image(repositoryName=name, imageManifest=_manifest(f"{name}-tagged"), imageTag="1.0.0")
    # PutImage without imageTag: an untagged image (a build's intermediate)
    ecr.put_image(repositoryName=name, imageManifest=_manifest(f"{name}-untagged"))
    every = ecr.describe_images(repositoryName=name, filter={"tagStatus": "ANY"})["imageDetails"]
    tagged = ecr.describe_images(repositoryName=name, filter={"tagStatus": "TAGGED"})["imageDetails"]
    untagged = ecr.describe_images(repositoryName=name, filter={"tagStatus": "UNTAGGED"})["imageDetails"]
    assert len(every) == 2
    assert [d["imageTags"] for d in tagged] == [["1.0.0"]]
    assert len(untagged) == 1 and "imageTags" not in untagged[0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maxResults": 1001},
        {"nextToken": "not-a-token"},
        {"filter": {"tagStatus": "SOME"}},
        {"imageIds": [{"imageTag": "1.0.0"}], "maxResults": 10},
    ],
)
def test_what_ecr_refuses_is_an_invalid_parameter(repository, kwargs):
    ecr, name = repository
    ecr.put_image(repositoryName=name, imageManifest=_manifest(f"{name}-x"), imageTag="1.0.0")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ecr.describe_images(repositoryName=name, **kwargs)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"


def test_images_named_by_id_are_answered_as_moto_does(repository):
    ecr, name = repository
    ecr.put_image(repositoryName=name, imageManifest=_manifest(f"{name}-y"), imageTag="2.0.0")
    found = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": "2.0.0"}])["imageDetails"]
    assert [d["imageTags"] for d in found] == [["2.0.0"]]
