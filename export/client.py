"""Clients of a served VLANet: TF Serving's REST JSON and gRPC `PredictRequest`.

    python -m export.client --server=localhost:8501 --features=FILE --video_id=ID \
        --duration=30.5 --query="a person opens the door" [--protocol=rest|grpc]
        [--format=instances|inputs] [--model_name=vlanet] [--signature=serving_default]

REST (port 8501) sends `POST /v1/models/<name>:predict` with either format TF Serving
accepts:

- row ("instances"): `{"signature_name": ..., "instances": [{"query": "...",
  "video_features": [[...], ...], "video_length": 40, "duration": 30.5}, ...]}`; every
  instance must have the same shapes, so the videos of one request are zero-padded to a
  common T (`batch_inputs` does it) and `video_length` says how many clips are real.
  The answer is `{"predictions": [{"moments": ..., "scores": ..., ...}, ...]}`.
- columnar ("inputs"): `{"signature_name": ..., "inputs": {"query": [...],
  "video_features": [[[...]]], ...}}`, answered by `{"outputs": {"moments": ..., ...}}`.

Binary strings (the serialized tf.Examples of `serve_examples`) travel as
`{"b64": "<base64>"}`. gRPC (port 8500) sends a `tensorflow_serving.apis.PredictRequest`
(pip package `tensorflow-serving-api`).

`tensors_from_rest`, `rest_response` and `serve_rest_http` do what the server does with
such JSON (decode to tensors of the signature's dtypes, encode the outputs back, answer
a refused request with HTTP 400 and `{"error": ...}`); the tests run the exact client
payloads through them and the SavedModel's signature, and check both sides against TF
Serving's JSON rules (tests/test_tf_serving_rules.py).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import app, flags

from vlanet_tf.serving_io import batch_inputs, format_moments, load_features, ranked_moments

REST_FORMATS = ("instances", "inputs")
DEFAULT_MODEL_NAME = "vlanet"
DEFAULT_SIGNATURE = "serving_default"


# ------------------------------------------------------------------------- requests


def _json_value(value: Any) -> Any:
    """numpy / bytes -> JSON: text as str, other bytes as {"b64": ...}."""
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "SU":
            return [_json_value(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value


def rest_payload(
    inputs: Mapping[str, Any],
    request_format: str = "instances",
    signature_name: str = DEFAULT_SIGNATURE,
    binary_inputs: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON body of a TF Serving REST predict call.

    Args:
      inputs: {input name: batched value [B, ...]}.
      request_format: "instances" (row) or "inputs" (columnar).
      binary_inputs: names whose strings are sent as {"b64": ...} (serialized protos).
    """
    if request_format not in REST_FORMATS:
        raise ValueError(f"request_format must be one of {REST_FORMATS}, got {request_format!r}")

    def encode(name: str, value: Any) -> Any:
        if name in binary_inputs:
            return [{"b64": base64.b64encode(bytes(v)).decode("ascii")} for v in value]
        return _json_value(np.asarray(value) if not isinstance(value, list) else value)

    columns = {name: encode(name, value) for name, value in inputs.items()}
    if request_format == "inputs":
        return {"signature_name": signature_name, "inputs": columns}
    sizes = {name: len(v) for name, v in columns.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every input needs the same batch size, got {sizes}")
    batch = next(iter(sizes.values()), 0)
    instances = [{name: v[i] for name, v in columns.items()} for i in range(batch)]
    return {"signature_name": signature_name, "instances": instances}


def rest_url(server: str, model_name: str = DEFAULT_MODEL_NAME, version: int | None = None) -> str:
    """`http://server/v1/models/<name>[/versions/<v>]:predict`."""
    base = server if "://" in server else f"http://{server}"
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version else "")
    return base.rstrip("/") + path + ":predict"


def predict_rest(
    url: str,
    payload: Mapping[str, Any],
    timeout: float = 30.0,
    output_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """POSTs a REST payload; returns {output name: array [B, ...]}.

    `output_names` names the output of a one-output signature, whose answer TF Serving
    sends without the name. A refused request (TF Serving: HTTP 4xx/5xx with
    `{"error": "..."}`) raises RuntimeError with the server's message.
    """
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail)["error"]
        except (ValueError, KeyError, TypeError):
            pass  # Not TF Serving's error body (e.g. a proxy's page): shown as it is.
        raise RuntimeError(f"{url} answered HTTP {error.code}: {detail}") from error
    return parse_rest_response(answer, output_names)


def _is_b64(value: Any) -> bool:
    """TF Serving's binary value: an object whose only key is "b64", a string."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decoded(value: Any) -> Any:
    """JSON output value -> Python: {"b64": ...} -> bytes, lists recursively."""
    if _is_b64(value):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _output_array(value: Any) -> np.ndarray:
    value = _decoded(value)
    array = np.asarray(value)
    if array.dtype.kind == "S":  # Keep bytes whole (NumPy "S" strips trailing NULs).
        array = np.asarray(value, dtype=object)
    return array


def parse_rest_response(
    answer: Mapping[str, Any], output_names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """`{"predictions": ...}` or `{"outputs": ...}` -> {name: array [B, ...]}.

    Reads every form TF Serving writes: named rows or columns for a signature with
    several outputs, bare values for one with a single output (named here by
    `output_names`), `{"b64": ...}` for `_bytes` outputs (returned as bytes), and
    NaN / Infinity tokens (already numbers once `json.loads` has read them).
    """
    if "error" in answer:
        raise RuntimeError(f"the server refused the request: {answer['error']}")

    def single(value: Any) -> dict[str, np.ndarray]:
        names = list(output_names or ())
        if len(names) != 1:
            raise ValueError(
                "the answer holds one unnamed output (TF Serving leaves out the name "
                "when the signature has a single output); pass output_names=[its name]"
            )
        return {names[0]: _output_array(value)}

    if "outputs" in answer:
        outputs = answer["outputs"]
        if isinstance(outputs, dict) and not _is_b64(outputs):
            return {k: _output_array(v) for k, v in outputs.items()}
        return single(outputs)
    if "predictions" in answer:
        rows = answer["predictions"]
        if not isinstance(rows, list):
            raise ValueError(f"'predictions' must be a list, got {type(rows).__name__}")
        named = bool(rows) and all(isinstance(r, dict) and not _is_b64(r) for r in rows)
        if not named:
            return single(rows)
        names = list(rows[0])
        if any(sorted(r) != sorted(names) for r in rows):
            raise ValueError("the rows of 'predictions' name different outputs")
        return {k: _output_array([row[k] for row in rows]) for k in names}
    raise ValueError(f"expected 'predictions' or 'outputs' in the answer, got {sorted(answer)}")


def grpc_request(
    inputs: Mapping[str, Any],
    model_name: str = DEFAULT_MODEL_NAME,
    signature_name: str = DEFAULT_SIGNATURE,
    version: int | None = None,
):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `inputs`."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind == "U":
            proto = tf.make_tensor_proto(
                [v.encode("utf-8") if isinstance(v, str) else v for v in array.tolist()],
                dtype=tf.string,
            )
        else:
            proto = tf.make_tensor_proto(array)
        request.inputs[name].CopyFrom(proto)
    return request


def predict_grpc(target: str, request, timeout: float = 30.0) -> dict[str, np.ndarray]:
    """Sends a PredictRequest to `host:port`; returns {output name: array}."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


# ------------------------------------------------- what the server does with the JSON


def _decode_json(value: Any) -> Any:
    if isinstance(value, dict):
        if not _is_b64(value):
            raise ValueError(
                f"a JSON object value must be {{'b64': <string>}}, got keys {sorted(value)}"
            )
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def _check_leaves(name: str, value: Any, dtype: tf.DType) -> None:
    """TF Serving's JSON types per dtype: numbers for floats, integral numbers for
    ints, true/false for bool, strings or {"b64": ...} for strings (no conversions)."""
    if isinstance(value, list):
        for v in value:
            _check_leaves(name, v, dtype)
        return
    if dtype == tf.string:
        ok = isinstance(value, str) or _is_b64(value)
    elif dtype == tf.bool:
        ok = isinstance(value, bool)
    elif dtype.is_integer:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ValueError(
            f"input {name!r}: JSON value {json.dumps(value)[:40]} is not of type "
            f"{dtype.name}"
        )


def _tensor(name: str, value: Any, spec: tf.TensorSpec) -> tf.Tensor:
    _check_leaves(name, value, spec.dtype)
    value = _decode_json(value)
    if spec.dtype == tf.string:
        try:
            tensor = tf.constant(np.asarray(value, dtype=object), tf.string)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"input {name!r}: expected (nested) lists of strings of one shape, "
                f"got {str(value)[:80]}"
            ) from error
    else:
        try:
            array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(
                f"input {name!r}: expected a (nested) list of {spec.dtype.name} values, "
                f"got {str(value)[:80]}"
            ) from error
        tensor = tf.constant(array)
    if not spec.shape.is_compatible_with(tensor.shape):
        raise ValueError(
            f"input {name!r} has shape {tensor.shape.as_list()}, the signature expects "
            f"{spec.shape.as_list()} (None: any size)"
        )
    return tensor


def _json_shape(value: Any) -> list[int]:
    """The dense shape of a JSON value, read along first elements (as TF Serving)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def tensors_from_rest(
    payload: Mapping[str, Any], specs: Mapping[str, tf.TensorSpec]
) -> tuple[dict[str, tf.Tensor], bool]:
    """Decodes a REST body as TF Serving does: (tensors by input name, row format?).

    Row format: every instance names exactly the signature's inputs, and each input
    has one shape in every instance. Columnar: every input is present; names the
    signature does not take are ignored, as TF Serving ignores them.

    Args:
      payload: the JSON body (`instances` or `inputs`).
      specs: the signature's inputs, e.g. `signature.structured_input_signature[1]`.
    """
    if not isinstance(payload, Mapping):
        raise ValueError("the body must be a JSON object")
    if "signature_name" in payload and not isinstance(payload["signature_name"], str):
        raise ValueError("'signature_name' must be a string")
    if ("instances" in payload) == ("inputs" in payload):
        raise ValueError("the body must hold exactly one of 'instances' or 'inputs'")
    names = sorted(specs)

    def is_object(value: Any) -> bool:
        return isinstance(value, dict) and not _is_b64(value)

    if "inputs" in payload:
        columns = payload["inputs"]
        if not is_object(columns):
            if len(names) != 1:
                raise ValueError(f"'inputs' must be an object naming the inputs {names}")
            columns = {names[0]: columns}
        missing = sorted(set(names) - set(columns))
        if missing:
            raise ValueError(f"the signature takes inputs {names}; missing {missing}")
        return {name: _tensor(name, columns[name], specs[name]) for name in names}, False
    rows = payload["instances"]
    if not isinstance(rows, list) or not rows:
        raise ValueError("'instances' must be a non-empty list")
    objects = is_object(rows[0])
    if not objects and len(names) != 1:
        raise ValueError(f"each instance must be an object naming the inputs {names}")
    shapes: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if is_object(row) != objects:
            raise ValueError(
                f"instance {i} is {'not ' if objects else ''}an object, unlike instance 0"
            )
        row = row if objects else {names[0]: row}
        if sorted(row) != names:
            raise ValueError(
                f"instance {i}: the signature takes inputs {names}; missing "
                f"{sorted(set(names) - set(row))}, unknown {sorted(set(row) - set(names))}"
            )
        for name in names:
            shape = _json_shape(row[name])
            if shapes.setdefault(name, shape) != shape:
                raise ValueError(
                    f"instance {i}: input {name!r} has shape {shape}, instance 0 has "
                    f"{shapes[name]}; every instance needs the same shapes"
                )
    if not objects:
        rows = [{names[0]: r} for r in rows]
    columns = {name: [r[name] for r in rows] for name in names}
    return {name: _tensor(name, columns[name], specs[name]) for name in names}, True


# TF Serving writes a DT_STRING output whose name ends so as {"b64": ...}.
BYTES_SUFFIX = "_bytes"


def _json_output(name: str, array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind in "SU":
        def encode(v: Any) -> Any:
            if isinstance(v, list):
                return [encode(x) for x in v]
            data = v if isinstance(v, bytes) else str(v).encode("utf-8")
            if name.endswith(BYTES_SUFFIX):
                return {"b64": base64.b64encode(data).decode("ascii")}
            return data.decode("utf-8", "replace")

        return encode(array.tolist())
    # TF Serving writes non-finite floats as NaN / Infinity; so does json.dumps.
    return array.tolist()


def rest_response(outputs: Mapping[str, Any], row_format: bool) -> dict[str, Any]:
    """The server's answer: `predictions` rows for `instances`, `outputs` otherwise;
    with one output, its bare values (TF Serving leaves out the name)."""
    arrays = {k: np.asarray(v) for k, v in outputs.items()}
    if not arrays:
        raise ValueError("the signature returned no output")
    if not row_format:
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            return {"outputs": _json_output(name, array)}
        return {"outputs": {k: _json_output(k, v) for k, v in arrays.items()}}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
    if None in sizes.values() or len(set(sizes.values())) > 1:
        raise ValueError(
            f"the row format needs every output batched alike, got first dimensions {sizes}"
        )
    columns = {k: _json_output(k, v) for k, v in arrays.items()}
    batch = next(iter(sizes.values()))
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    return {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(batch)]}


def serve_rest(signature, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Answers a REST body with a loaded signature, as TF Serving would."""
    tensors, row_format = tensors_from_rest(payload, signature.structured_input_signature[1])
    outputs = signature(**tensors)
    return rest_response({k: v.numpy() for k, v in outputs.items()}, row_format)


def serve_rest_http(signature, body: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for a raw request body: 200 and the outputs, or, as
    TF Serving answers a refused request, 400 and `{"error": "<message>"}`."""
    try:
        payload = json.loads(body.decode("utf-8"))
        return 200, serve_rest(signature, payload)
    except (ValueError, UnicodeDecodeError, tf.errors.InvalidArgumentError) as error:
        message = error.message if isinstance(error, tf.errors.OpError) else str(error)
        return 400, {"error": message}


# ---------------------------------------------------------------------------- main


def define_flags() -> None:
    flags.DEFINE_string("server", "localhost:8501", "host:port (8501 REST, 8500 gRPC).")
    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "Transport.")
    flags.DEFINE_enum("format", "instances", list(REST_FORMATS), "REST body format.")
    flags.DEFINE_string("model_name", DEFAULT_MODEL_NAME, "MODEL_NAME of the server.")
    flags.DEFINE_integer("model_version", None, "Version to ask for (default: latest).")
    flags.DEFINE_string("signature", DEFAULT_SIGNATURE, "Signature name.")
    flags.DEFINE_string("features", None, "HDF5 file or folder of .npy clip features.")
    flags.DEFINE_string("video_id", None, "Video whose features to send.")
    flags.DEFINE_float("duration", None, "Video duration in seconds.")
    flags.DEFINE_string("query", None, "The sentence.")
    flags.DEFINE_float("timeout", 30.0, "Seconds to wait for the answer.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    f = flags.FLAGS
    if not (f.features and f.query and f.duration):
        raise app.UsageError("--features, --query and --duration are required")
    inputs = batch_inputs([f.query], [load_features(f.features, f.video_id)], [f.duration])
    if f.protocol == "rest":
        outputs = predict_rest(
            rest_url(f.server, f.model_name, f.model_version),
            rest_payload(inputs, f.format, f.signature),
            f.timeout,
        )
    else:
        request = grpc_request(inputs, f.model_name, f.signature, f.model_version)
        outputs = predict_grpc(f.server, request, f.timeout)
    print(format_moments(ranked_moments(outputs, 0), float(outputs["similarity"][0])))


if __name__ == "__main__":
    define_flags()
    app.run(main)
