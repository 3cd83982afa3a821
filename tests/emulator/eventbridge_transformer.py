"""EventBridge's input transformer, as AWS documents it, for rendering what a
rule's target receives from an event without an AWS account.

What the documentation says, and what this module does about each point
(Amazon EventBridge User Guide, "Amazon EventBridge input transformation" and
"Tutorial: Use input transformer to customize what EventBridge passes to the
event target"; EventBridge API Reference, ``InputTransformer``):

* ``InputPathsMap`` maps variable names to JSON paths into the event: "at most
  100 key-value pairs", "You must use JSON dot notation, not bracket
  notation" (array indices excepted: the user guide lists "array indices" among
  the supported syntax), key pattern ``[A-Za-z0-9_-]+``, and keys "cannot start
  with AWS." -- :func:`check` rejects a map that breaks these.
* "Predefined variables ... reserved, and you can't create variables with
  these names": ``aws.events.rule-arn``, ``aws.events.rule-name``,
  ``aws.events.event.ingestion-time`` (ISO 8601), ``aws.events.event`` (the
  event without ``detail``) and ``aws.events.event.json`` (the whole event),
  the last two "only ... as a value for a JSON field, as its contents are not
  escaped".
* ``InputTemplate`` holds placeholders ``<variable-name>``; "The characters <
  and > can't be escaped". "You can create a template that passes either a
  string or JSON to the target": a template that is a JSON object (starts with
  ``{``) is JSON, anything else a string -- and "For Strings, quotes are
  required": the string template is written in double quotes, and the target
  gets it with them (the tutorial's SNS message is ``"This event was of
  customerCreated type."``, quotes included).
* Substitution: in the documented examples a string value placed in a string
  (``"instance <instance> is in <state>"`` -> ``"instance i-0123456789 is in
  RUNNING"``) or inside quotes in JSON appears as its bare text; a variable
  outside quotes in JSON (``"instance" : <instance>``) becomes the value as JSON
  (``"i-0123456789"``, numbers and objects as they are). "EventBridge doesn't
  escape values extracted by Input Path": a quote inside a value is inserted as
  it is.
* "If you specify a variable to match a JSON path that doesn't exist in the
  event, that variable isn't created and won't appear in the output": its
  placeholder renders as nothing.
* ``InputTemplate`` length: 1 to 8192 characters.

Event-pattern matching is the router's (:func:`router.matches`): one
implementation for the local EventBridge and for these checks.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_VARIABLES = 100
MAX_TEMPLATE_LENGTH = 8192
PREDEFINED = (
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
)
_KEY = re.compile(r"[A-Za-z0-9_\-]+")
# $ then .name segments (letters, digits, -, _, /) each optionally indexed [n]
_PATH = re.compile(r"\$(\.[A-Za-z0-9_\-/]+(\[\d+\])*)*")
_SEGMENT = re.compile(r"\.([A-Za-z0-9_\-/]+)((?:\[\d+\])*)")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


class TransformerError(ValueError):
    """A transformer EventBridge would refuse at PutTargets."""


def check(transformer: dict[str, Any]) -> None:
    paths = transformer.get("InputPathsMap") or {}
    template = transformer.get("InputTemplate")
    if not isinstance(template, str) or not 1 <= len(template) <= MAX_TEMPLATE_LENGTH:
        raise TransformerError(f"InputTemplate must be a string of 1 to {MAX_TEMPLATE_LENGTH} characters")
    if len(paths) > MAX_VARIABLES:
        raise TransformerError(f"InputPathsMap has {len(paths)} entries, at most {MAX_VARIABLES}")
    for key, path in paths.items():
        if not _KEY.fullmatch(key) or key.upper().startswith("AWS."):
            raise TransformerError(f"InputPathsMap key {key!r}: [A-Za-z0-9_-]+, not starting with AWS.")
        if key in PREDEFINED:
            raise TransformerError(f"InputPathsMap key {key!r} is a predefined variable")
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise TransformerError(f"InputPathsMap {key}: {path!r} is not a JSON path in dot notation")


def extract(event: Any, path: str) -> tuple[bool, Any]:
    """The value at ``path`` (``$.detail.state``, ``$.resources[0]``): (found, value)."""
    value = event
    for name, indices in _SEGMENT.findall(path[1:]):
        if not isinstance(value, dict) or name not in value:
            return False, None
        value = value[name]
        for index in re.findall(r"\[(\d+)\]", indices):
            if not isinstance(value, list) or int(index) >= len(value):
                return False, None
            value = value[int(index)]
    return True, value


def _inside_string(text: str, at: int) -> bool:
    """Whether position ``at`` of a JSON template lies inside a string literal."""
    inside = False
    escaped = False
    for ch in text[:at]:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            inside = not inside
    return inside


def render(
    transformer: dict[str, Any],
    event: dict[str, Any],
    *,
    rule_arn: str = "arn:aws:events:eu-west-1:123456789012:rule/example",
    ingestion_time: str | None = None,
) -> str:
    """The text EventBridge hands the target for ``event``."""
    check(transformer)
    template: str = transformer["InputTemplate"]
    variables: dict[str, Any] = {}
    for key, path in (transformer.get("InputPathsMap") or {}).items():
        found, value = extract(event, path)
        if found:
            variables[key] = value
    without_detail = {k: v for k, v in event.items() if k != "detail"}
    predefined = {
        "aws.events.rule-arn": rule_arn,
        "aws.events.rule-name": rule_arn.rsplit("/", 1)[-1],
        "aws.events.event.ingestion-time": ingestion_time or event.get("time"),
        "aws.events.event": without_detail,
        "aws.events.event.json": event,
    }
    is_json = template.lstrip().startswith("{")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in predefined:
            value = predefined[name]
        elif name in (transformer.get("InputPathsMap") or {}):
            if name not in variables:
                return ""  # the path is absent from the event
            value = variables[name]
        else:
            return match.group(0)  # not a variable: literal text
        if isinstance(value, str) and (not is_json or _inside_string(template, match.start())):
            return value  # bare text, unescaped
        return json.dumps(value, separators=(",", ":"))

    return _PLACEHOLDER.sub(substitute, template)
