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

`tensors_from_rest` and `rest_response` do what the server does with such JSON (decode
to tensors of the signature's dtypes, encode the outputs back); the tests run the exact
client payloads through them and the SavedModel's signature.
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
    url: str, payload: Mapping[str, Any], timeout: float = 30.0
) -> dict[str, np.ndarray]:
    """POSTs a REST payload; returns {output name: array [B, ...]}."""
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        raise RuntimeError(f"{url} answered HTTP {error.code}: {detail}") from error
    return parse_rest_response(answer)


def parse_rest_response(answer: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """`{"predictions": [...]}` or `{"outputs": {...}}` -> {name: array [B, ...]}."""
    if "error" in answer:
        raise RuntimeError(f"the server refused the request: {answer['error']}")
    if "outputs" in answer:
        outputs = answer["outputs"]
        return {k: np.asarray(v) for k, v in outputs.items()}
    if "predictions" in answer:
        rows = answer["predictions"]
        if rows and not isinstance(rows[0], dict):
            raise ValueError("a single-output answer has no output names; expected dict rows")
        names = rows[0].keys() if rows else []
        return {k: np.asarray([row[k] for row in rows]) for k in names}
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
        if set(value) != {"b64"}:
            raise ValueError(
                f"a JSON object value must be {{'b64': ...}}, got keys {sorted(value)}"
            )
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def _tensor(name: str, value: Any, spec: tf.TensorSpec) -> tf.Tensor:
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
        except (ValueError, TypeError) as error:
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


def tensors_from_rest(
    payload: Mapping[str, Any], specs: Mapping[str, tf.TensorSpec]
) -> tuple[dict[str, tf.Tensor], bool]:
    """Decodes a REST body as TF Serving does: (tensors by input name, row format?).

    Args:
      payload: the JSON body (`instances` or `inputs`).
      specs: the signature's inputs, e.g. `signature.structured_input_signature[1]`.
    """
    if ("instances" in payload) == ("inputs" in payload):
        raise ValueError("the body must hold exactly one of 'instances' or 'inputs'")
    names = sorted(specs)
    if "inputs" in payload:
        columns = payload["inputs"]
        if not isinstance(columns, dict):
            if len(names) != 1:
                raise ValueError(f"'inputs' must name the inputs {names}")
            columns = {names[0]: columns}
        row_format = False
    else:
        rows = payload["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("'instances' must be a non-empty list")
        if not all(isinstance(r, dict) for r in rows):
            if len(names) != 1:
                raise ValueError(f"each instance must be an object naming the inputs {names}")
            rows = [{names[0]: r} for r in rows]
        columns = {name: [r.get(name) for r in rows] for name in rows[0]}
        row_format = True
    missing = sorted(set(names) - set(columns))
    unknown = sorted(set(columns) - set(names))
    if missing or unknown:
        raise ValueError(
            f"the signature takes inputs {names}; missing {missing}, unknown {unknown}"
        )
    return {name: _tensor(name, columns[name], specs[name]) for name in names}, row_format


def _json_output(array: np.ndarray) -> Any:
    if array.dtype == object:
        return [_json_value(v) for v in array.tolist()]
    # TF Serving writes non-finite floats as NaN / Infinity; so does json.dumps.
    return array.tolist()


def rest_response(outputs: Mapping[str, Any], row_format: bool) -> dict[str, Any]:
    """The server's answer: `predictions` rows for `instances`, `outputs` otherwise."""
    arrays = {k: np.asarray(v) for k, v in outputs.items()}
    if not row_format:
        return {"outputs": {k: _json_output(v) for k, v in arrays.items()}}
    batch = len(next(iter(arrays.values())))
    return {
        "predictions": [
            {k: _json_output(v[i : i + 1])[0] for k, v in arrays.items()} for i in range(batch)
        ]
    }


def serve_rest(signature, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Answers a REST body with a loaded signature, as TF Serving would."""
    tensors, row_format = tensors_from_rest(payload, signature.structured_input_signature[1])
    outputs = signature(**tensors)
    return rest_response({k: v.numpy() for k, v in outputs.items()}, row_format)


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
