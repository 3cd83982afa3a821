"""ECR behaviour that ferry's local emulator adds on top of moto.

This module is THE one place where ferry's test harness changes how moto's
ECR (``moto.ecr``) behaves.

What moto 5.2.1 already does as AWS does: ``PutImage`` stores the manifest
under its tag and digest; ``DescribeImages`` with ``imageIds`` answers those
images (``ImageNotFoundException`` for one it lacks,
``RepositoryNotFoundException`` for an unknown repository), each with
``imageDigest``, ``imageTags`` (left out when empty, as AWS does) and
``imagePushedAt`` (whole epoch seconds in moto; AWS reports the push time
with sub-second precision -- ferry compares push times as times, so the
emulator's coarser clock only makes two pushes within one second look
simultaneous; tests space such pushes).

What this module adds (:func:`install`):

* :func:`describe_images_filters_and_pages_like_aws` -- ``DescribeImages``
  without ``imageIds`` honours ``filter.tagStatus`` and answers in pages
  (``maxResults``/``nextToken``); moto ignores both and answers every image.

AWS page followed: Amazon ECR API Reference, **DescribeImages** --

* ``filter``: "The filter key and value with which to filter your
  DescribeImages results"; ``DescribeImagesFilter.tagStatus``: ``TAGGED``,
  ``UNTAGGED`` or ``ANY``, "filter results based on whether they are TAGGED
  or UNTAGGED".
* ``maxResults``: "The maximum number of repository results returned by
  DescribeImages in paginated output ... This value can be between 1 and
  1000. If this parameter is not used, then DescribeImages returns up to 100
  results and a nextToken value, if applicable. This option cannot be used
  when you specify images with imageIds."
* ``nextToken``: "The nextToken value returned from a previous paginated
  DescribeImages request ... This option cannot be used when you specify
  images with imageIds."; the answer's ``nextToken`` is null "when there are
  no more results to return".

A ``maxResults`` outside 1-1000 is ``InvalidParameterException`` (the
reference's constraint; ECR validates with that error, e.g. "Invalid
parameter at 'maxResults' failed to satisfy constraint"); ``maxResults`` or
``nextToken`` together with ``imageIds``, a ``tagStatus`` not in the enum, and
a token the emulator did not issue are ``InvalidParameterException`` too.
Images are paged in the order moto keeps them (push order); the token is
opaque to the caller (an offset here).
"""

from __future__ import annotations

import base64
import functools
import threading
from typing import Any

from moto.core.responses import ActionResult
from moto.ecr import responses as ecr_responses
from moto.ecr.exceptions import InvalidParameterException

__all__ = ["install", "describe_images_filters_and_pages_like_aws"]

_LOCK = threading.Lock()
_INSTALLED = False

#: ``maxResults`` when the call gives none, and its upper bound.
DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000
TAG_STATUSES = ("TAGGED", "UNTAGGED", "ANY")
_TOKEN_PREFIX = "ferry-describe-images:"


def _patch(owner: type, name: str, make: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "__ferry_ecr__", False):
        return
    replacement = make(original)
    functools.update_wrapper(replacement, original)
    replacement.__ferry_ecr__ = True  # type: ignore[attr-defined]
    setattr(owner, name, replacement)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{offset}".encode()).decode()


def _page_offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if text.startswith(_TOKEN_PREFIX):
            offset = int(text[len(_TOKEN_PREFIX):])
            if offset >= 0:
                return offset
    except (ValueError, UnicodeError):
        pass
    raise InvalidParameterException(f"Invalid parameter at 'nextToken': {token} is not a token DescribeImages returned")


def _tagged(image: Any) -> bool:
    detail = image if isinstance(image, dict) else getattr(image, "__dict__", {})
    tags = detail.get("imageTags", detail.get("image_tags"))
    return bool(tags)


def describe_images_filters_and_pages_like_aws() -> None:
    """``DescribeImages`` without ``imageIds``: the images whose tag status
    matches ``filter.tagStatus`` (default ``ANY``), at most ``maxResults`` (1-1000,
    default 100) per page, with a ``nextToken`` when more follow."""

    def make(original: Any) -> Any:
        def describe_images(self: Any) -> ActionResult:
            max_results = self._get_param("maxResults")
            token = self._get_param("nextToken")
            tag_status = (self._get_param("filter") or {}).get("tagStatus") or "ANY"
            if self._get_param("imageIds"):
                if max_results is not None or token:
                    raise InvalidParameterException(
                        "maxResults and nextToken cannot be used when you specify images with imageIds"
                    )
                return original(self)
            if tag_status not in TAG_STATUSES:
                raise InvalidParameterException(
                    f"Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: "
                    f"Member must satisfy enum value set: [{', '.join(TAG_STATUSES)}]"
                )
            if max_results is not None and not 1 <= int(max_results) <= MAX_RESULTS_LIMIT:
                bound = "greater than or equal to 1" if int(max_results) < 1 else f"less than or equal to {MAX_RESULTS_LIMIT}"
                raise InvalidParameterException(
                    f"Invalid parameter at 'maxResults' failed to satisfy constraint: Member must have value {bound}"
                )
            start = _page_offset(token) if token else 0
            size = DEFAULT_MAX_RESULTS if max_results is None else int(max_results)
            images = original(self).result["imageDetails"]
            if tag_status != "ANY":
                images = [i for i in images if _tagged(i) == (tag_status == "TAGGED")]
            page: dict[str, Any] = {"imageDetails": images[start : start + size]}
            if start + size < len(images):
                page["nextToken"] = _page_token(start + size)
            return ActionResult(page)

        return describe_images

    _patch(ecr_responses.ECRResponse, "describe_images", make)


def install() -> None:
    """Apply every behaviour in this module to moto (idempotent)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        describe_images_filters_and_pages_like_aws()
        _INSTALLED = True
