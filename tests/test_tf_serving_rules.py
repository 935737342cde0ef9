"""TF Serving's REST JSON rules, written out here, against the client and the stand-in.

`TFServingRules` below is a reference written from TF Serving's own documentation and
code (tensorflow/serving: g3doc/api_rest.md, util/json_tensor.cc), not from this
project's client. The tests check that (a) the client's request bodies are ones TF
Serving accepts and decode to the tensors the client meant, (b) the client reads every
answer form TF Serving writes for our signatures, and (c) the stand-in server of the
other serving tests (`export.client.serve_rest*`) answers and refuses as TF Serving does.

The rules encoded:
- The body is a JSON object with exactly one of "instances" (row format) and "inputs"
  (columnar); "signature_name", if there, is a string.
- Row: "instances" is a non-empty list. If its first item is an object (other than a
  {"b64": ...} value), every item is an object whose keys are exactly the signature's
  input names; otherwise the signature must have one input and every item is its value.
  Each input has the same shape in every item; the tensor is [items, *shape].
- Columnar: "inputs" is an object naming every input (names the signature does not
  take are not read), or, for a one-input signature, the bare value.
- A value is dense: its shape is read along first elements, every list at a level has
  that level's size and every leaf sits at the last level. float: any JSON number,
  NaN, Infinity and -Infinity included; int32 / int64: integral numbers only (3.0 is
  not one); bool: true / false; string: a JSON string, or {"b64": <base64>} for bytes.
- Answers: "predictions" for row requests, "outputs" for columnar. With several outputs,
  row items are objects {name: value} (all outputs need one batch size, or the answer is
  an error) and "outputs" is an object; with a single output the name is left out: a
  plain list of values, or the bare value.
- Floats are written NaN, Infinity, -Infinity, whole numbers with ".0"; a string output
  whose name ends in "_bytes" is written {"b64": <base64>}, any other as a string.
- A refused request is answered with an HTTP error status (400 for an invalid argument)
  and the body {"error": "<message>"}.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping

import numpy as np
import pytest
import tensorflow as tf

from export import client
from tests import export_testing
from vlanet_tf.serving_io import batch_inputs

F = 8


class Refused(Exception):
    """TF Serving refuses the body (its error text is not reproduced)."""


# ------------------------------------------------------------------ the reference


class TFServingRules:
    """TF Serving's JSON <-> tensor rules, for signatures given as {name: dtype} with
    dtype one of "float", "int32", "int64", "bool", "string"."""

    INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

    @staticmethod
    def is_b64(value: Any) -> bool:
        return isinstance(value, dict) and list(value) == ["b64"] and isinstance(value["b64"], str)

    @classmethod
    def is_object(cls, value: Any) -> bool:
        return isinstance(value, dict) and not cls.is_b64(value)

    # -- requests

    @classmethod
    def leaf(cls, value: Any, dtype: str) -> Any:
        if isinstance(value, dict):
            if dtype != "string" or not cls.is_b64(value):
                raise Refused(f"object {value} where a {dtype} was expected")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError as error:
                raise Refused("Unable to base64 decode") from error
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if dtype == "float" and is_number:
            return float(value)
        if dtype in cls.INT_RANGE and isinstance(value, int) and not isinstance(value, bool):
            low, high = cls.INT_RANGE[dtype]
            if low <= value <= high:
                return value
        if dtype == "bool" and isinstance(value, bool):
            return value
        if dtype == "string" and isinstance(value, str):
            return value.encode("utf-8")
        raise Refused(f"{json.dumps(value)} is not a {dtype}")

    @classmethod
    def tensor(cls, value: Any, dtype: str) -> tuple[list[int], list[Any]]:
        """(shape, values in row-major order) of one JSON value."""
        shape, node = [], value
        while isinstance(node, list):
            shape.append(len(node))
            if not node:
                break
            node = node[0]
        values: list[Any] = []

        def fill(node: Any, level: int) -> None:
            if not isinstance(node, list):
                if level != len(shape):
                    raise Refused(f"value at level {level + 1}, expected at {len(shape)}")
                values.append(cls.leaf(node, dtype))
                return
            if level >= len(shape):
                raise Refused(f"list at level {level}, expected < {len(shape)}")
            if len(node) != shape[level]:
                raise Refused(f"list of size {len(node)} at level {level}, expected {shape[level]}")
            for item in node:
                fill(item, level + 1)

        fill(value, 0)
        return shape, values

    @staticmethod
    def array(shape: list[int], values: list[Any], dtype: str) -> np.ndarray:
        np_dtype = {"float": np.float32, "int32": np.int32, "int64": np.int64,
                    "bool": np.bool_, "string": object}[dtype]
        return np.array(values, dtype=np_dtype).reshape(shape)

    @classmethod
    def decode_request(cls, text: str, inputs: Mapping[str, str]) -> tuple[str, dict[str, np.ndarray]]:
        """("row" | "columnar", {input name: array}) of a request body, or Refused."""
        doc = json.loads(text)  # Python's json reads NaN / Infinity, as TF Serving does.
        if not isinstance(doc, dict):
            raise Refused("Is not object")
        if "signature_name" in doc and not isinstance(doc["signature_name"], str):
            raise Refused("signature_name must be a string")
        if "instances" in doc and "inputs" in doc:
            raise Refused("expecting only one of 'inputs' or 'instances'")
        if "instances" in doc:
            items = doc["instances"]
            if not isinstance(items, list):
                raise Refused("Expecting 'instances' to be an list/array")
            if not items:
                raise Refused("No values in 'instances' array")
            if not isinstance(items[0], dict) and len(inputs) > 1:
                raise Refused("instances is a plain list, but expecting list of objects")
            objects = cls.is_object(items[0])
            shapes: dict[str, list[int]] = {}
            values: dict[str, list[Any]] = {name: [] for name in inputs}
            for i, item in enumerate(items):
                if cls.is_object(item) != objects:
                    raise Refused(f"item {i}: an object and a value in one list")
                named = item if objects else {next(iter(inputs)): item}
                for name, value in named.items():
                    if name not in inputs:
                        raise Refused(f"does not have named input: {name}")
                    shape, flat = cls.tensor(value, inputs[name])
                    if shapes.setdefault(name, shape) != shape:
                        raise Refused(f"item {i}: shape {shape}, expecting {shapes[name]}")
                    values[name].extend(flat)
                if set(named) != set(inputs):
                    raise Refused(f"item {i}: keys must be equal to {sorted(inputs)}")
            return "row", {
                name: cls.array([len(items), *shapes[name]], values[name], inputs[name])
                for name in inputs
            }
        if "inputs" in doc:
            value = doc["inputs"]
            if not cls.is_object(value):
                if len(inputs) > 1:
                    raise Refused("inputs is a plain value/list, but expecting an object")
                value = {next(iter(inputs)): value}
            tensors = {}
            for name, dtype in inputs.items():
                if name not in value:
                    raise Refused(f"Missing named input: {name} in 'inputs' object.")
                tensors[name] = cls.array(*cls.tensor(value[name], dtype), dtype)
            return "columnar", tensors
        raise Refused("Missing 'inputs' or 'instances' key")

    # -- answers

    @staticmethod
    def number(value: Any, dtype: np.dtype) -> str:
        if dtype.kind == "b":
            return "true" if value else "false"
        if dtype.kind in "iu":
            return str(int(value))
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "-Infinity" if value < 0 else "Infinity"
        # Six significant digits when they read back as the same value, else all.
        text = "%.6g" % value
        if dtype.type(float(text)) != dtype.type(value):
            text = "%.*g" % (9 if dtype == np.float32 else 17, value)
        if "." not in text and "e" not in text:
            text += ".0"
        return text

    @classmethod
    def write(cls, name: str, array: Any) -> str:
        array = np.asarray(array, dtype=object if isinstance(array, bytes) else None)
        if array.ndim:
            return "[" + ",".join(cls.write(name, item) for item in array) + "]"
        value = array.item()
        if array.dtype == object or array.dtype.kind in "SU":
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            if name.endswith("_bytes"):
                return json.dumps({"b64": base64.b64encode(data).decode("ascii")})
            return json.dumps(data.decode("utf-8"))
        return cls.number(value, array.dtype)

    @classmethod
    def encode_answer(cls, outputs: Mapping[str, np.ndarray], request_format: str) -> str:
        """The JSON text TF Serving answers with, or Refused."""
        arrays = {k: np.asarray(v) for k, v in outputs.items()}
        if not arrays:
            raise Refused("Cannot convert empty tensor map to JSON")
        several = len(arrays) > 1
        if request_format == "columnar":
            if several:
                body = ",".join(f"{json.dumps(k)}:{cls.write(k, v)}" for k, v in arrays.items())
                return '{"outputs":{' + body + "}}"
            ((name, array),) = arrays.items()
            return '{"outputs":' + cls.write(name, array) + "}"
        batch = None
        for name, array in arrays.items():
            if array.ndim == 0:
                raise Refused(f"Tensor name: {name} has no shape information")
            if batch is not None and array.shape[0] != batch:
                raise Refused(f"Tensor name: {name} has inconsistent batch size")
            batch = array.shape[0]
        items = []
        for i in range(batch):
            if several:
                fields = ",".join(f"{json.dumps(k)}:{cls.write(k, v[i])}" for k, v in arrays.items())
                items.append("{" + fields + "}")
            else:
                ((name, array),) = arrays.items()
                items.append(cls.write(name, array[i]))
        return '{"predictions":[' + ",".join(items) + "]}"

    @staticmethod
    def error_body(message: str) -> str:
        return json.dumps({"error": message})


RULES = TFServingRules


def same_json(a: Any, b: Any, where: str = "") -> None:
    """Asserts two parsed JSON values are the same: keys, nesting, JSON types, and
    values (floats at float32 precision, NaN equal to NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: {str(a)[:60]} vs {str(b)[:60]}"
        for k in a:
            same_json(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: list vs {str(b)[:60]}"
        for i, (x, y) in enumerate(zip(a, b)):
            same_json(x, y, f"{where}[{i}]")
    elif isinstance(a, bool) or isinstance(b, bool):
        assert a is b, where
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, float) and isinstance(b, float), f"{where}: {a!r} vs {b!r}"
        assert np.float32(a) == np.float32(b) or (math.isnan(a) and math.isnan(b)), where
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


# --------------------------------------------------------- our signatures and inputs


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    run = export_testing.exported_run(tmp_path_factory)
    return tf.saved_model.load(str(run.saved_model)).signatures


def _dtype(spec: tf.TensorSpec) -> str:
    return {tf.float32: "float", tf.int32: "int32", tf.int64: "int64", tf.bool: "bool",
            tf.string: "string"}[spec.dtype]


def _input_types(signature) -> dict[str, str]:
    return {k: _dtype(v) for k, v in signature.structured_input_signature[1].items()}


def _example(num_clips: int, seed: int) -> bytes:
    features = export_testing.random_video(num_clips, F, seed)
    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "query": feature(bytes_list=tf.train.BytesList(value=[b"open the door"])),
        "features": feature(bytes_list=tf.train.BytesList(value=[features.astype("<f4").tobytes()])),
        "num_clips": feature(int64_list=tf.train.Int64List(value=[num_clips])),
        "feature_dim": feature(int64_list=tf.train.Int64List(value=[F])),
        "duration": feature(float_list=tf.train.FloatList(value=[5.0])),
    })).SerializeToString()


def _inputs(signatures, name: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(client inputs, binary input names) of a request to signature `name`."""
    video = batch_inputs(
        ["a person opens the door", "Someone is holding the sandwich."],
        [export_testing.random_video(11, F, 1), export_testing.random_video(25, F, 2)],
        [8.0, 17.5],
    )
    if name == "serving_default":
        return video, ()
    if name == "serve_examples":
        return {"examples": [_example(7, 3), _example(9, 4)]}, ("examples",)
    if name == "encode_query":
        return {"query": video["query"]}, ()
    if name == "encode_video":
        return {k: video[k] for k in ("video_features", "video_length", "duration")}, ()
    assert name == "match_proposals"
    encoded = _call(signatures["encode_video"], _inputs(signatures, "encode_video")[0])
    words = _call(signatures["encode_query"], {"query": video["query"]})
    return {
        "proposals": encoded["proposals"], "windows": encoded["windows"],
        "mask": encoded["mask"], "words": words["words"], "word_mask": words["mask"],
        "last": words["last"],
    }, ()


def _call(signature, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    specs = signature.structured_input_signature[1]
    tensors = {
        k: tf.constant(list(v) if specs[k].dtype == tf.string else np.asarray(v), specs[k].dtype)
        for k, v in inputs.items()
    }
    return {k: v.numpy() for k, v in signature(**tensors).items()}


SIGNATURES = ("serving_default", "serve_examples", "encode_query", "encode_video", "match_proposals")
CASES = [(s, f) for s in SIGNATURES for f in client.REST_FORMATS]
RULE_FORMAT = {"instances": "row", "inputs": "columnar"}


# ------------------------------------------------------ the reference, on the docs


def test_the_reference_reads_and_writes_the_documented_examples():
    # api_rest.md, "Specifying input tensors in row format".
    fmt, t = RULES.decode_request('{"instances": ["foo", "bar", "baz"]}', {"x": "string"})
    assert fmt == "row" and t["x"].tolist() == [b"foo", b"bar", b"baz"]
    _, t = RULES.decode_request('{"instances": [[[1, 2]], [[3, 4]]]}', {"x": "int32"})
    assert t["x"].shape == (2, 1, 2)
    types = {"tag": "string", "signal": "int32", "sensor": "int32"}
    row = """{"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                            {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}]}"""
    columnar = """{"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                             "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}"""
    (_, by_row), (fmt, by_column) = RULES.decode_request(row, types), RULES.decode_request(columnar, types)
    assert fmt == "columnar"
    for name in types:
        np.testing.assert_array_equal(by_row[name], by_column[name])
    assert by_row["sensor"].shape == (2, 2, 2) and by_row["signal"].shape == (2, 5)
    # "JSON conformance": NaN and Infinity are numbers; "Encoding binary values".
    _, t = RULES.decode_request('{"inputs": [1.0, -3.14, NaN, Infinity]}', {"x": "float"})
    assert np.isnan(t["x"][2]) and np.isinf(t["x"][3])
    _, t = RULES.decode_request('{"instances": [{"b64": "aW1hZ2UgYnl0ZXM="}]}', {"x": "string"})
    assert t["x"].tolist() == [b"image bytes"]
    # "Response format": one output -> bare values; several -> named.
    assert json.loads(RULES.encode_answer({"y": np.array([1.5, 2.0], np.float32)}, "row")) == {
        "predictions": [1.5, 2.0]
    }
    assert RULES.encode_answer({"y": np.array([2.0, np.nan, -np.inf], np.float32)}, "columnar") == (
        '{"outputs":[2.0,NaN,-Infinity]}'
    )
    two = {"y": np.array([1, 2], np.int32), "z_bytes": np.array([b"\x00\xff", b"ok"], object)}
    assert json.loads(RULES.encode_answer(two, "row")) == {
        "predictions": [{"y": 1, "z_bytes": {"b64": "AP8="}}, {"y": 2, "z_bytes": {"b64": "b2s="}}]
    }
    with pytest.raises(Refused, match="inconsistent batch size"):
        RULES.encode_answer({"y": np.zeros(2), "z": np.zeros(3)}, "row")
    for bad in ('{"instances": []}', '{"instances": [1], "inputs": [1]}', "{}", "[1]",
                '{"instances": [1.5]}', '{"inputs": [[1], [2, 3]]}', '{"instances": [[1], [1, 2]]}'):
        with pytest.raises(Refused):
            RULES.decode_request(bad, {"x": "int32"})


# ------------------------------------------------------- (a) the client's requests


@pytest.mark.parametrize("name, request_format", CASES)
def test_client_requests_are_bodies_tf_serving_accepts(signatures, name, request_format):
    signature = signatures[name]
    inputs, binary = _inputs(signatures, name)
    body = json.dumps(client.rest_payload(inputs, request_format, name, binary_inputs=binary))
    fmt, tensors = RULES.decode_request(body, _input_types(signature))
    assert fmt == RULE_FORMAT[request_format]
    assert json.loads(body)["signature_name"] == name
    specs = signature.structured_input_signature[1]
    for key, value in inputs.items():
        want = np.asarray([v.encode() if isinstance(v, str) else v for v in value], object) \
            if specs[key].dtype == tf.string else np.asarray(value)
        got = tensors[key]
        assert specs[key].shape.is_compatible_with(got.shape), key
        if got.dtype == object:
            assert got.tolist() == want.tolist(), key
        else:
            np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=key)


def test_client_sends_non_finite_features_as_tf_serving_reads_them(signatures):
    inputs, _ = _inputs(signatures, "serving_default")
    inputs["video_features"] = inputs["video_features"].copy()
    inputs["video_features"][0, 0, :2] = [np.nan, -np.inf]
    body = json.dumps(client.rest_payload(inputs, "inputs"))
    assert "NaN" in body and "-Infinity" in body
    _, tensors = RULES.decode_request(body, _input_types(signatures["serving_default"]))
    assert np.isnan(tensors["video_features"][0, 0, 0])
    assert tensors["video_features"][0, 0, 1] == -np.inf


# --------------------------------------------------------- (b) the client's reading


@pytest.mark.parametrize("name, request_format", CASES)
def test_client_reads_what_tf_serving_answers_for_our_signatures(signatures, name, request_format):
    inputs, _ = _inputs(signatures, name)
    direct = _call(signatures[name], inputs)
    text = RULES.encode_answer(direct, RULE_FORMAT[request_format])
    got = client.parse_rest_response(json.loads(text))
    assert sorted(got) == sorted(direct)
    for key, want in direct.items():
        assert got[key].shape == want.shape, key
        np.testing.assert_allclose(got[key].astype(np.float64), want.astype(np.float64),
                                   rtol=1e-6, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_client_reads_single_output_bytes_and_non_finite_answers(request_format):
    similarity = np.array([0.25, np.nan, np.inf], np.float32)
    one = json.loads(RULES.encode_answer({"similarity": similarity}, request_format))
    with pytest.raises(ValueError, match="output_names"):
        client.parse_rest_response(one)  # No name in the answer, none given.
    got = client.parse_rest_response(one, output_names=["similarity"])
    np.testing.assert_array_equal(got["similarity"], similarity)
    ids = np.array([b"\x00\xffraw", b"clip-7"], object)
    got = client.parse_rest_response(
        json.loads(RULES.encode_answer({"ids_bytes": ids}, request_format)), ["ids_bytes"]
    )
    assert got["ids_bytes"].tolist() == ids.tolist()
    two = {"ids_bytes": ids, "name": np.array([b"a", b"b"], object), "n": np.array([3, 4], np.int32)}
    got = client.parse_rest_response(json.loads(RULES.encode_answer(two, request_format)))
    assert got["ids_bytes"].tolist() == ids.tolist()
    assert got["name"].tolist() == ["a", "b"] and got["n"].tolist() == [3, 4]


def test_client_reports_an_error_body_with_its_message():
    with pytest.raises(RuntimeError, match="refused the request: Missing named input: duration"):
        client.parse_rest_response(json.loads(RULES.error_body("Missing named input: duration")))


# ------------------------------------------------------------- (c) the stand-in


@pytest.mark.parametrize("name, request_format", CASES)
def test_stand_in_answers_as_tf_serving(signatures, name, request_format):
    inputs, binary = _inputs(signatures, name)
    body = json.dumps(client.rest_payload(inputs, request_format, name, binary_inputs=binary))
    fmt, tensors = RULES.decode_request(body, _input_types(signatures[name]))
    # TF Serving's tensors through the signature, written by TF Serving's rules...
    want = json.loads(RULES.encode_answer(_call(signatures[name], tensors), fmt))
    # ...and the stand-in's answer to the same text.
    status, answer = client.serve_rest_http(signatures[name], body.encode())
    assert status == 200
    same_json(json.loads(json.dumps(answer)), want)


@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_stand_in_writes_single_outputs_bytes_and_non_finite_floats_as_tf_serving(request_format):
    row = request_format == "row"
    cases = [
        {"similarity": np.array([0.25, np.nan, -np.inf], np.float32)},
        {"ids_bytes": np.array([b"\x00\xff", b"clip"], object)},
        {"ids_bytes": np.array([b"\x00\xff", b"clip"], object), "label": np.array([b"a", b"b"], object),
         "num": np.array([1, 2], np.int32), "valid": np.array([True, False])},
    ]
    for outputs in cases:
        want = json.loads(RULES.encode_answer(outputs, request_format))
        same_json(json.loads(json.dumps(client.rest_response(outputs, row))), want)
    uneven = {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}
    with pytest.raises(Refused):
        RULES.encode_answer(uneven, "row")
    with pytest.raises(ValueError, match="batched alike"):
        client.rest_response(uneven, True)


def _bad_bodies(signatures) -> dict[str, str]:
    inputs, _ = _inputs(signatures, "serving_default")
    rows = client.rest_payload(inputs, "instances")
    columns = client.rest_payload(inputs, "inputs")

    def edit(payload, change):
        payload = json.loads(json.dumps(payload))
        change(payload)
        return json.dumps(payload)

    return {
        "both formats": json.dumps({**rows, **columns}),
        "neither format": json.dumps({"signature_name": "serving_default"}),
        "empty instances": json.dumps({"instances": []}),
        "instances not a list": json.dumps({"instances": rows["instances"][0]}),
        "plain list for several inputs": json.dumps({"instances": ["a person opens the door"]}),
        "an instance misses an input": edit(rows, lambda p: p["instances"][1].pop("duration")),
        "an instance has an unknown input": edit(rows, lambda p: p["instances"][1].update(extra=1)),
        "instances of different shapes": edit(
            rows, lambda p: p["instances"][0].update(video_features=p["instances"][0]["video_features"][:3])
        ),
        "an object among rows of values": json.dumps({"instances": [{"query": "a"}, "b"]}),
        "int input written as 11.0": edit(rows, lambda p: p["instances"][0].update(video_length=11.0)),
        "float input written as a string": edit(columns, lambda p: p["inputs"].update(duration=["8.0", "1"])),
        "bool where a number goes": edit(columns, lambda p: p["inputs"].update(duration=[True, False])),
        "b64 object for a float": edit(columns, lambda p: p["inputs"].update(duration=[{"b64": "AAAA"}, 1.0])),
        "object that is not b64": edit(columns, lambda p: p["inputs"].update(query=[{"text": "a"}, "b"])),
        "ragged columns": edit(columns, lambda p: p["inputs"]["video_features"][0].pop()),
        "missing columnar input": edit(columns, lambda p: p["inputs"].pop("video_length")),
        "signature_name not a string": edit(columns, lambda p: p.update(signature_name=3)),
        "not an object": json.dumps([columns]),
    }


def test_stand_in_refuses_what_tf_serving_refuses(signatures):
    signature = signatures["serving_default"]
    types = _input_types(signature)
    for case, body in _bad_bodies(signatures).items():
        with pytest.raises(Refused):
            RULES.decode_request(body, types)
        status, answer = client.serve_rest_http(signature, body.encode())
        assert status == 400, case
        assert list(answer) == ["error"] and isinstance(answer["error"], str), case
        assert answer["error"], case


def test_stand_in_ignores_columnar_names_the_signature_does_not_take(signatures):
    inputs, _ = _inputs(signatures, "serving_default")
    payload = client.rest_payload(inputs, "inputs")
    payload["inputs"]["comment"] = "not an input"
    body = json.dumps(payload)
    fmt, tensors = RULES.decode_request(body, _input_types(signatures["serving_default"]))
    assert "comment" not in tensors
    status, answer = client.serve_rest_http(signatures["serving_default"], body.encode())
    assert status == 200
    same_json(answer, json.loads(RULES.encode_answer(_call(signatures["serving_default"], tensors), fmt)))


def test_client_shows_the_error_body_of_an_http_refusal(signatures):
    signature = signatures["serving_default"]
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            status, answer = client.serve_rest_http(
                signature, self.rfile.read(int(self.headers["Content-Length"]))
            )
            seen.append(answer)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(answer).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = client.rest_url(f"127.0.0.1:{server.server_address[1]}")
        inputs, _ = _inputs(signatures, "serving_default")
        payload = client.rest_payload(inputs, "inputs")
        del payload["inputs"]["duration"]
        with pytest.raises(RuntimeError, match=r"HTTP 400: .*missing \['duration'\]") as error:
            client.predict_rest(url, payload)
    finally:
        server.shutdown()
    assert "{" not in str(error.value)  # The message, not the JSON around it.
    assert seen == [{"error": seen[0]["error"]}]
