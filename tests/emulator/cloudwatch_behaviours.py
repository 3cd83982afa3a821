"""CloudWatch alarm behaviour that ferry's local emulator adds on top of moto.

This module is THE one place where ferry's test harness changes how moto's
CloudWatch (``moto.cloudwatch``) behaves.

What moto 5.2.1 already does as AWS does (``test_bake_window.py`` checks it):
``PutMetricAlarm`` keeps ``Period`` and ``EvaluationPeriods`` (also for the
alarms ``cfn.py`` creates from ``infra/*.yaml``) and ``DescribeAlarms``
returns them; ``SetAlarmState`` sets ``StateValue``, ``StateReason`` and
``StateUpdatedTimestamp`` (now, microseconds; an alarm starts ``OK`` with the
time it was created). Like AWS's ``StateUpdatedTimestamp`` ("tracks the
timestamp of any state update, even if StateValue doesn't change"), moto's
moves on every ``SetAlarmState``, including one to the state the alarm is
already in.

What this module adds (:func:`install`):

* :func:`alarms_report_state_transitioned_timestamp` -- ``DescribeAlarms``
  returns ``StateTransitionedTimestamp``, which moto leaves out.
* :func:`describe_alarms_pages_like_aws` -- ``DescribeAlarms`` honours
  ``MaxRecords`` and ``NextToken`` (moto returns every alarm at once).

And, for the WSGI layer (``ferry_emulator.py`` hands it the requests):

* :func:`serve_rpc_v2_cbor` -- CloudWatch over the **Smithy RPC v2 CBOR**
  protocol, the only one the Rust SDK (``aws-sdk-cloudwatch`` 1.140) speaks to
  CloudWatch; moto serves awsJson 1.0 and query only (a CBOR request gets 404).
  Each CBOR call is served by moto as the same awsJson 1.0 call, so every
  behaviour above (and ``/_ferry/faults``, ``/_ferry/calls``) applies to it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import io
import json
import math
import threading
from typing import Any, Callable, Iterable

from moto.cloudwatch import models as cw_models
from moto.cloudwatch import responses as cw_responses
from moto.cloudwatch.exceptions import CloudWatchException, ValidationError
from moto.core.responses import ActionResult

__all__ = [
    "install",
    "alarms_report_state_transitioned_timestamp",
    "describe_alarms_pages_like_aws",
    "rpc_v2_cbor_operation",
    "serve_rpc_v2_cbor",
    "cbor_encode",
    "cbor_decode",
]

_LOCK = threading.Lock()
_INSTALLED = False


def _patch(owner: type, name: str, make: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "__ferry_cloudwatch__", False):
        return
    replacement = make(original)
    functools.update_wrapper(replacement, original)
    replacement.__ferry_cloudwatch__ = True  # type: ignore[attr-defined]
    setattr(owner, name, replacement)


def alarms_report_state_transitioned_timestamp() -> None:
    """``StateTransitionedTimestamp``: "the date and time that the alarm's
    StateValue most recently changed" (CloudWatch API Reference, MetricAlarm).

    Unlike ``StateUpdatedTimestamp`` it stays put when ``SetAlarmState`` (or
    an evaluation) leaves the alarm in the state it was in, so it is the field
    that tells "went into ALARM after the release began" from "was in ALARM
    already". A new alarm's transition time is its creation time. moto
    serialises a model attribute named after the member, so setting
    ``state_transitioned_timestamp`` on the alarm is enough.
    """

    def make_init(original: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            self.state_transitioned_timestamp = self.state_updated_timestamp

        return __init__

    def make_update(original: Any) -> Any:
        def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
            before = self.state_value
            original(self, reason, reason_data, state_value)
            if self.state_value != before or getattr(self, "state_transitioned_timestamp", None) is None:
                self.state_transitioned_timestamp = self.state_updated_timestamp

        return update_state

    _patch(cw_models.Alarm, "__init__", make_init)
    _patch(cw_models.Alarm, "update_state", make_update)



# --------------------------------------------------------------------------
# DescribeAlarms pages

#: DescribeAlarms ``MaxRecords``: "The maximum number of alarm descriptions to
#: retrieve", 1-100; AWS answers 50 per page when it is not given.
DEFAULT_MAX_RECORDS = 50
MAX_RECORDS_LIMIT = 100
_TOKEN_PREFIX = "ferry-describe-alarms:"


class InvalidNextToken(CloudWatchException):
    """The ``InvalidNextToken`` error DescribeAlarms declares (HTTP 400)."""

    code = "InvalidNextToken"


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
    raise InvalidNextToken(f"Invalid NextToken: {token}")


def describe_alarms_pages_like_aws() -> None:
    """``DescribeAlarms`` answers a page of at most ``MaxRecords`` alarms (1-100,
    default 50) and a ``NextToken`` when more follow; the call that passes that
    token back gets the next page (CloudWatch API Reference, DescribeAlarms:
    ``MaxRecords`` "The maximum number of alarm descriptions to retrieve",
    ``NextToken`` "The token returned by a previous call to indicate that there
    is more data available"). moto ignores both and answers every alarm.

    The page runs over the metric alarms, then the composite alarms, in the
    order moto keeps them; the token is opaque to the caller (an offset here).
    A token the emulator did not issue is ``InvalidNextToken`` (400); a
    ``MaxRecords`` outside 1-100 is ``ValidationError`` (400), with AWS's
    constraint message.
    """

    def make(original: Any) -> Any:
        def describe_alarms(self: Any) -> ActionResult:
            max_records = self._get_param("MaxRecords")
            token = self._get_param("NextToken")
            if max_records is not None and not 1 <= int(max_records) <= MAX_RECORDS_LIMIT:
                bound = "greater than or equal to 1" if int(max_records) < 1 else f"less than or equal to {MAX_RECORDS_LIMIT}"
                raise ValidationError(
                    f"1 validation error detected: Value '{max_records}' at 'maxRecords' "
                    f"failed to satisfy constraint: Member must have value {bound}"
                )
            start = _page_offset(token) if token else 0
            size = DEFAULT_MAX_RECORDS if max_records is None else int(max_records)
            answer = original(self).result
            alarms = [("MetricAlarms", a) for a in answer["MetricAlarms"]]
            alarms += [("CompositeAlarms", a) for a in answer["CompositeAlarms"]]
            page: dict[str, Any] = {"MetricAlarms": [], "CompositeAlarms": []}
            for kind, alarm in alarms[start : start + size]:
                page[kind].append(alarm)
            if start + size < len(alarms):
                page["NextToken"] = _page_token(start + size)
            return ActionResult(page)

        return describe_alarms

    _patch(cw_responses.CloudWatchResponse, "describe_alarms", make)


def install() -> None:
    """Apply every behaviour in this module to moto (idempotent)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        alarms_report_state_transitioned_timestamp()
        describe_alarms_pages_like_aws()
        _INSTALLED = True


# --------------------------------------------------------------------------
# Smithy RPC v2 CBOR

#: The header every rpcv2Cbor request and response carries, and its value.
SMITHY_PROTOCOL = "rpc-v2-cbor"
CBOR_CONTENT_TYPE = "application/cbor"
#: CloudWatch's service shape name (botocore's ``targetPrefix``) and namespace:
#: the path segment is ``GraniteServiceVersion20100801``; an error's ``__type``
#: is an absolute shape ID ``com.amazonaws.cloudwatch#<ErrorShape>``.
SERVICE_NAME = "GraniteServiceVersion20100801"
SHAPE_NAMESPACE = "com.amazonaws.cloudwatch"
#: Protocol-level errors (no CloudWatch shape): AWS's own namespace for them.
FRAMEWORK_NAMESPACE = "com.amazon.coral.service"
EPOCH_TAG = 1  # RFC 8949 section 3.4.2: epoch-based date/time

_MODEL_LOCK = threading.Lock()
_MODEL: Any = None


def _service_model() -> Any:
    """botocore's CloudWatch model (the pinned botocore's; moto serialises from it too)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            import botocore.session

            _MODEL = botocore.session.get_session().get_service_model("cloudwatch")
        return _MODEL


def rpc_v2_cbor_operation(environ: dict[str, Any]) -> str | None:
    """The operation named by an rpcv2Cbor request to CloudWatch, else ``None``.

    A request is one when it carries ``smithy-protocol: rpc-v2-cbor`` and its path
    ends ``/service/<serviceName>/operation/<operationName>`` (only the last four
    segments route; ``<serviceName>`` is ``GraniteServiceVersion20100801`` or,
    as the spec says a service SHOULD accept, ``com.amazonaws.cloudwatch.
    GraniteServiceVersion20100801``). The operation may be one CloudWatch lacks:
    :func:`serve_rpc_v2_cbor` answers that."""
    if (environ.get("HTTP_SMITHY_PROTOCOL") or "").strip().lower() != SMITHY_PROTOCOL:
        return None
    segments = (environ.get("PATH_INFO") or "").rstrip("/").split("/")
    if len(segments) < 5 or segments[-4] != "service" or segments[-2] != "operation":
        return None
    if segments[-3] not in (SERVICE_NAME, f"{SHAPE_NAMESPACE}.{SERVICE_NAME}"):
        return None
    return segments[-1] or None


# ---- CBOR, with botocore's own encoder and decoder (no new dependency)


def _writer_class() -> type:
    from botocore.serialize import RpcV2CBORSerializer

    class CborWriter(RpcV2CBORSerializer):
        """botocore's rpcv2Cbor serializer, turned to encode an *output* shape
        (and plain values for error bodies). Two changes: a timestamp is always
        tag 1 over a double (the value moto answered, not rounded to whole
        seconds), and an integer member that JSON carried as ``60.0`` is written
        as the integer 60."""

        def encode(self, value: Any, shape: Any) -> bytes:
            out = bytearray()
            self._serialize_data_item(out, value, shape)
            return bytes(out)

        def encode_plain(self, value: Any) -> bytes:
            out = bytearray()
            self._plain(out, value)
            return bytes(out)

        def _plain(self, out: bytearray, value: Any) -> None:
            if value is None:
                out.extend(self._get_initial_byte(self.FLOAT_AND_SIMPLE_MAJOR_TYPE, 22))  # null
            elif isinstance(value, bool):
                self._serialize_type_boolean(out, value, None, None)
            elif isinstance(value, int):
                self._serialize_type_integer(out, value, None, None)
            elif isinstance(value, float):
                self._serialize_type_double(out, value, None, None)
            elif isinstance(value, str):
                self._serialize_type_string(out, value, None, None)
            elif isinstance(value, (bytes, bytearray)):
                self._serialize_type_blob(out, value, None, None)
            elif isinstance(value, _dt.datetime):
                self._serialize_type_timestamp(out, value, None, None)
            elif isinstance(value, (list, tuple)):
                out.extend(self._length(self.LIST_MAJOR_TYPE, len(value)))
                for item in value:
                    self._plain(out, item)
            elif isinstance(value, dict):
                items = [(k, v) for k, v in value.items() if v is not None]
                out.extend(self._length(self.MAP_MAJOR_TYPE, len(items)))
                for key, item in items:
                    self._serialize_type_string(out, str(key), None, None)
                    self._plain(out, item)
            else:
                raise TypeError(f"cannot encode {type(value).__name__} as CBOR")

        def _length(self, major_type: int, length: int) -> bytes:
            info, size = self._get_additional_info_and_num_bytes(length)
            head = self._get_initial_byte(major_type, info)
            return head + (length.to_bytes(size, "big") if size else b"")

        def _serialize_type_timestamp(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
            serialized.extend(self._get_initial_byte(self.TAG_MAJOR_TYPE, EPOCH_TAG))
            self._serialize_type_double(serialized, _epoch_seconds(value), shape, key)

        def _serialize_type_integer(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
            super()._serialize_type_integer(serialized, int(value), shape, key)

        def _serialize_type_double(self, serialized: bytearray, value: Any, shape: Any, key: Any) -> None:
            super()._serialize_type_double(serialized, float(value), shape, key)

    return CborWriter


_WRITER: Any = None


def _writer() -> Any:
    global _WRITER
    if _WRITER is None:
        _WRITER = _writer_class()()
    return _WRITER


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    from botocore.utils import parse_timestamp

    return _epoch_seconds(parse_timestamp(value))


class Tagged:
    """A CBOR tag :func:`cbor_decode` met, kept as it was: ``Tagged(1, 1.7e9)``."""

    def __init__(self, tag: int, value: Any):
        self.tag = tag
        self.value = value

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Tagged) and (other.tag, other.value) == (self.tag, self.value)

    def __repr__(self) -> str:
        return f"Tagged({self.tag}, {self.value!r})"


_READER: Any = None


def _reader_class() -> type:
    global _READER
    if _READER is None:
        from botocore.parsers import BaseCBORParser

        class CborReader(BaseCBORParser):
            """botocore's rpcv2Cbor decoder, for any data item; tag 1 only."""

            def __init__(self, keep_tags: bool):
                super().__init__(timestamp_parser=lambda value: value)
                self.keep_tags = keep_tags

            def _parse_tag(self, stream: Any, additional_info: int) -> Any:
                tag = self._parse_unsigned_integer(stream, additional_info)
                value = self.parse_data_item(stream)
                if tag != EPOCH_TAG or isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"unsupported CBOR tag {tag} over {value!r}")
                return Tagged(tag, value) if self.keep_tags else value

        _READER = CborReader
    return _READER


def cbor_decode(data: bytes, keep_tags: bool = False) -> Any:
    """One CBOR data item, with botocore's rpcv2Cbor decoder (definite and
    indefinite lengths, half/single/double floats). Tag 1 becomes its epoch
    seconds (``keep_tags``: a :class:`Tagged`); any other tag, trailing bytes
    or a truncated item raise ``ValueError``."""
    reader = _reader_class()(keep_tags)
    stream = reader.get_peekable_stream_from_bytes(data)
    try:
        value = reader.parse_data_item(stream)
    except ValueError:
        raise
    except Exception as exc:  # botocore's ResponseParserError, struct.error, UnicodeDecodeError
        raise ValueError(str(exc) or type(exc).__name__) from exc
    if stream.read(1):
        raise ValueError("bytes after the CBOR data item")
    return value


def cbor_encode(value: Any) -> bytes:
    """Plain values as CBOR (maps, arrays, text, integers, doubles, booleans,
    bytes; a ``datetime`` as tag 1 over a double). ``None`` map values are left out."""
    return _writer().encode_plain(value)


def _as_json(value: Any) -> Any:
    """A decoded CBOR request value as awsJson carries it: bytes as base64,
    non-finite doubles as ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


# ---- the translation


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _answer(
    start_response: StartResponse, status: int, body: bytes | None, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    out = [("smithy-protocol", SMITHY_PROTOCOL)]
    if body is not None:
        out.append(("Content-Type", CBOR_CONTENT_TYPE))
    out.append(("Content-Length", str(len(body or b""))))
    start_response(f"{status} {reason}", out + list(headers or []))
    return [body or b""]


def _error_shape(code: str) -> Any:
    """CloudWatch's error shape named ``code``, else the first whose query error
    code it is (``ValidationError`` -> ``ValidationException``)."""
    shapes = _service_model().error_shapes
    for shape in shapes:
        if shape.name == code:
            return shape
    for shape in shapes:
        if (shape.metadata.get("error") or {}).get("code") == code:
            return shape
    return None


def cbor_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> tuple[int, bytes, list[tuple[str, str]]]:
    """An rpcv2Cbor error answer: ``(status, body, headers)``; ``headers`` are kept.

    The body is a CBOR map with ``__type``, the error's absolute shape ID, and
    ``message`` (CloudWatch's error shapes have nothing else, but for
    ``DashboardInvalidInputError`` and ``ResourceNotFoundException``, which ferry
    never meets). A code CloudWatch's model names (a shape name, or a shape's
    query error code: ``ValidationError``) is ``com.amazonaws.cloudwatch#<Shape>``
    and adds ``x-amzn-query-error: <code>;Sender|Receiver`` (CloudWatch is
    ``awsQueryCompatible``: the Rust SDK takes the error code from that header);
    any other code is ``com.amazon.coral.service#<code>``."""
    bare = code.split(":", 1)[0].rsplit("#", 1)[-1] or "InternalFailure"
    shape = _error_shape(bare)
    out = [h for h in (headers or []) if h[0].lower() != "x-amzn-query-error"]
    if shape is not None:
        error = shape.metadata.get("error") or {}
        query_code = error.get("code") or shape.name
        fault = "Sender" if error.get("senderFault") else "Receiver"
        out.append(("x-amzn-query-error", f"{query_code};{fault}"))
        body = {"__type": f"{SHAPE_NAMESPACE}#{shape.name}", "message": message}
    else:
        body = {"__type": f"{FRAMEWORK_NAMESPACE}#{bare}", "message": message}
    return status, cbor_encode(body), out


def serve_rpc_v2_cbor(
    environ: dict[str, Any],
    start_response: StartResponse,
    forward: WsgiApp,
    refused: Callable[[dict[str, Any], str, int], None] | None = None,
) -> Iterable[bytes]:
    """Serve one CloudWatch request in the Smithy **RPC v2 CBOR** protocol
    (https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html) by
    handing moto the same call in awsJson 1.0 (``forward``: the emulator's usual
    path to moto, so ``/_ferry/faults`` and ``/_ferry/calls`` see it as
    ``cloudwatch:<Operation>``), and answering moto's JSON as the protocol says.

    The request, as the spec's *Requests* section has it: ``POST
    {prefix?}/service/{serviceName}/operation/{operationName}`` with
    ``smithy-protocol: rpc-v2-cbor``, ``Content-Type: application/cbor``,
    ``Accept: application/cbor`` and a CBOR map of the input members as the
    body (none for an operation without input). It reaches moto as
    ``X-Amz-Target: GraniteServiceVersion20100801.<operationName>`` with the
    same members as JSON (a tag-1 timestamp as epoch seconds, a blob as base64).

    The answer (*Responses*, *Shape serialization*, *Operation error
    serialization*):

    * success: 200, ``smithy-protocol: rpc-v2-cbor``, ``Content-Type:
      application/cbor``, the output shape as a CBOR map, encoded member by
      member from botocore's model of CloudWatch (integers as integers,
      doubles as doubles, lists, nested structures); a **timestamp** is major
      type 6, **tag 1** (epoch-based date/time), over a double of epoch
      seconds -- ``StateUpdatedTimestamp``, ``StateTransitionedTimestamp`` (which
      :func:`alarms_report_state_transitioned_timestamp` adds), ... -- never the
      JSON number it was. Null members are left out. An operation without an
      output shape (``SetAlarmState``, ``PutMetricAlarm``) answers no body and
      no ``Content-Type``.
    * error: the status of the error shape (``httpError``; moto sends it, e.g.
      404 for ``ResourceNotFound``), a CBOR map with ``__type`` -- the error's
      absolute shape ID, ``com.amazonaws.cloudwatch#InvalidNextToken`` -- and
      ``message``, and (CloudWatch is ``awsQueryCompatible``)
      ``x-amzn-query-error: <code>;Sender``; no ``X-Amzn-ErrorType`` (the spec:
      responses SHOULD NOT carry it). See :func:`cbor_error`.
    * refused before moto: an operation CloudWatch does not have, or a method
      other than POST -> 404 ``com.amazon.coral.service#UnknownOperationException``
      (the path names the operation; smithy-rs servers answer an unknown
      rpcv2Cbor route 404); a body that is not one CBOR map, or a request that
      also carries ``X-Amz-Target``/``X-Amzn-Target`` (the spec: servers MUST
      reject it) -> 400 ``com.amazon.coral.service#SerializationException``.
    """
    operation = rpc_v2_cbor_operation(environ) or ""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > 0:
        raw = environ["wsgi.input"].read(length)
    elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
        raw = environ["wsgi.input"].read()
    else:
        raw = b""

    def refuse(status: int, code: str, message: str) -> list[bytes]:
        if refused is not None:
            refused(environ, operation, status)
        status, body, headers = cbor_error(status, code, message)
        return _answer(start_response, status, body, headers)

    model = _service_model()
    if environ.get("REQUEST_METHOD", "GET").upper() != "POST" or operation not in model.operation_names:
        return refuse(404, "UnknownOperationException", f"Unknown operation {operation or '(none)'}")
    if environ.get("HTTP_X_AMZ_TARGET") or environ.get("HTTP_X_AMZN_TARGET"):
        return refuse(400, "SerializationException", "an rpc-v2-cbor request must not carry X-Amz-Target")
    try:
        params = cbor_decode(raw) if raw else {}
    except ValueError as exc:
        return refuse(400, "SerializationException", f"the body is not CBOR: {exc}")
    if not isinstance(params, dict):
        return refuse(400, "SerializationException", "the body must be a CBOR map of the input members")
    body = json.dumps(_as_json(params)).encode()

    inner = dict(environ)
    for key in ("HTTP_SMITHY_PROTOCOL", "HTTP_ACCEPT", "HTTP_X_AMZN_QUERY_MODE", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        inner.pop(key, None)
    inner.update(
        {
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"{SERVICE_NAME}.{operation}",
            "wsgi.input": io.BytesIO(body),
        }
    )
    for key in ("REQUEST_URI", "RAW_URI"):
        if key in inner:
            inner[key] = "/"
    seen: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], *rest: Any) -> Callable[[bytes], None]:
        seen[:] = [status, headers]
        return lambda _data: None

    try:
        result = forward(inner, capture)
        try:
            answer = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception as exc:  # moto raised (an action it has not implemented): AWS's 500
        seen[:] = ["500 Internal Server Error", []]
        answer = f"{type(exc).__name__}: {exc}".encode()
    status = int(str(seen[0] if seen else "500").split(" ", 1)[0])
    moto_headers = {k.lower(): v for k, v in (seen[1] if seen else [])}
    keep = [("x-amzn-RequestId", moto_headers["x-amzn-requestid"])] if "x-amzn-requestid" in moto_headers else []
    try:
        document = json.loads(answer) if answer.strip() else {}
    except ValueError:
        document = None

    if status == 200 and isinstance(document, dict):
        output = model.operation_model(operation).output_shape
        if output is None:
            return _answer(start_response, 200, None, keep)
        from botocore.parsers import JSONParser

        parsed = JSONParser(timestamp_parser=lambda value: value).parse(
            {"body": json.dumps(document).encode(), "headers": {}, "status_code": 200}, output
        )
        parsed.pop("ResponseMetadata", None)
        return _answer(start_response, 200, _writer().encode(parsed, output), keep)

    if isinstance(document, dict):
        code = str(document.get("__type") or moto_headers.get("x-amzn-errortype") or "InternalFailure")
        message = str(document.get("message") or document.get("Message") or "")
    else:  # moto failed outside its serializer (an action it has not implemented: 500)
        code = "InternalFailure"
        message = answer.decode(errors="replace").strip()[:500] or f"HTTP {status}"
    error_status, error_body, headers = cbor_error(status if status >= 400 else 500, code, message, keep)
    return _answer(start_response, error_status, error_body, headers)
