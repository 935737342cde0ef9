"""TF Serving requests: the exact REST JSON and gRPC PredictRequest, answered by the
SavedModel; the served model scores the test split like the evaluate CLI."""

from __future__ import annotations

import base64
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import tensorflow as tf

from export import client, serving as serving_lib
from tests import export_testing
from vlanet_tf.evaluation import ground_truth, predictions, scoring
from vlanet_tf.data import pipeline, schema
from vlanet_tf.serving_io import batch_inputs, ranked_moments

F = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return export_testing.exported_run(tmp_path_factory)


@pytest.fixture(scope="module")
def serving(run):
    return tf.saved_model.load(str(run.saved_model)).signatures["serving_default"]


QUERIES = ["a person opens the door", "Someone is holding the sandwich."]


def _two_videos():
    return batch_inputs(
        QUERIES,
        [export_testing.random_video(11, F, 1), export_testing.random_video(25, F, 2)],
        [8.0, 17.5],
    )


def _direct(serving, inputs):
    tensors = {k: tf.constant(v.tolist() if k == "query" else v) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in serving(**tensors).items()}


def test_rest_instances_json_is_answered_by_the_signature(serving):
    inputs = _two_videos()
    body = json.dumps(client.rest_payload(inputs, "instances"))
    # What a client puts on the wire: one object per instance, names as in the signature.
    request = json.loads(body)
    assert request["signature_name"] == "serving_default"
    assert request["instances"][1]["query"] == QUERIES[1]
    assert request["instances"][0]["video_length"] == 11
    assert len(request["instances"][0]["video_features"]) == 25  # padded to common T
    answer = json.loads(json.dumps(client.serve_rest(serving, request)))
    assert sorted(answer["predictions"][0]) == sorted(serving_lib.RANKED_OUTPUTS)
    got = client.parse_rest_response(answer)
    want = _direct(serving, inputs)
    for key in serving_lib.RANKED_OUTPUTS:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)


def test_rest_inputs_json_is_answered_by_the_signature(serving):
    inputs = _two_videos()
    request = json.loads(json.dumps(client.rest_payload(inputs, "inputs")))
    assert request["inputs"]["query"] == QUERIES
    assert request["inputs"]["duration"] == [8.0, 17.5]
    answer = json.loads(json.dumps(client.serve_rest(serving, request)))
    assert sorted(answer["outputs"]) == sorted(serving_lib.RANKED_OUTPUTS)
    got = client.parse_rest_response(answer)
    want = _direct(serving, inputs)
    for key in serving_lib.RANKED_OUTPUTS:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)


def test_rest_b64_examples_reach_the_example_signature(run):
    signature = tf.saved_model.load(str(run.saved_model)).signatures["serve_examples"]
    features = export_testing.random_video(7, F, 3)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "query": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"open the door"])),
                "features": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[features.astype("<f4").tobytes()])
                ),
                "num_clips": tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
                "feature_dim": tf.train.Feature(int64_list=tf.train.Int64List(value=[F])),
                "duration": tf.train.Feature(float_list=tf.train.FloatList(value=[5.0])),
            }
        )
    ).SerializeToString()
    request = client.rest_payload(
        {"examples": [example]}, "instances", "serve_examples", binary_inputs=["examples"]
    )
    assert request["instances"] == [{"examples": {"b64": base64.b64encode(example).decode()}}]
    got = client.parse_rest_response(client.serve_rest(signature, json.loads(json.dumps(request))))
    assert got["moments"].shape == (1, 5, 2) and got["num_moments"][0] > 0


def test_malformed_rest_bodies_are_refused_clearly(serving):
    inputs = _two_videos()
    good = client.rest_payload(inputs, "inputs")
    with pytest.raises(ValueError, match="exactly one of 'instances' or 'inputs'"):
        client.tensors_from_rest({}, serving.structured_input_signature[1])
    missing = {"inputs": {k: v for k, v in good["inputs"].items() if k != "duration"}}
    with pytest.raises(ValueError, match=r"missing \['duration'\]"):
        client.serve_rest(serving, missing)
    wrong_f = json.loads(json.dumps(good))
    wrong_f["inputs"]["video_features"] = [[[0.0] * 5] * 3] * 2
    with pytest.raises(ValueError, match=r"shape \[2, 3, 5\].*expects \[None, None, 8\]"):
        client.serve_rest(serving, wrong_f)
    ragged = client.rest_payload(inputs, "instances")
    ragged["instances"][0]["video_features"] = ragged["instances"][0]["video_features"][:3]
    with pytest.raises(ValueError, match="video_features"):
        client.serve_rest(serving, ragged)
    nan = json.loads(json.dumps(good))
    nan["inputs"]["video_features"][0][0][0] = float("nan")
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        client.serve_rest(serving, json.loads(json.dumps(nan)))


def test_rest_client_talks_http_to_a_stand_in_server(serving):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            assert self.path == "/v1/models/vlanet:predict"
            status, answer = client.serve_rest_http(
                serving, self.rfile.read(int(self.headers["Content-Length"]))
            )
            answer = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = client.rest_url(f"127.0.0.1:{server.server_address[1]}")
        inputs = _two_videos()
        got = client.predict_rest(url, client.rest_payload(inputs, "instances"))
    finally:
        server.shutdown()
    np.testing.assert_allclose(got["scores"], _direct(serving, inputs)["scores"], atol=1e-6)


def test_grpc_predict_request_through_a_stand_in_prediction_service(serving):
    grpc = pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving")
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the proto's naming)
            assert request.model_spec.name == "vlanet"
            assert request.model_spec.signature_name == "serving_default"
            tensors = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            response = predict_pb2.PredictResponse()
            for name, value in serving(**tensors).items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        inputs = _two_videos()
        request = client.grpc_request(inputs)
        assert request.inputs["query"].dtype == tf.string.as_datatype_enum
        got = client.predict_grpc(f"127.0.0.1:{port}", request)
    finally:
        server.stop(None)
    want = _direct(serving, inputs)
    for key in serving_lib.RANKED_OUTPUTS:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6)


def test_served_r1_at_05_equals_the_evaluate_cli(run, serving, tmp_path):
    records = []
    for serialized in tf.data.TFRecordDataset(pipeline.shard_files(str(run.data_dir), "test")):
        video = schema.decode(serialized)
        sentences = [s.decode() for s in video["sentences"].numpy()]
        features = video["features"].numpy()
        duration = float(video["duration"].numpy())
        inputs = batch_inputs(sentences, [features] * len(sentences), [duration] * len(sentences))
        # Through the wire format: JSON text in, JSON text out.
        body = json.loads(json.dumps(client.rest_payload(inputs, "instances")))
        out = client.parse_rest_response(json.loads(json.dumps(client.serve_rest(serving, body))))
        for i, query_id in enumerate(video["query_ids"].numpy()):
            records.append(
                {
                    "query_id": query_id.decode(),
                    "video_id": video["video_id"].numpy().decode(),
                    "moments": ranked_moments(out, i),
                }
            )
    dataset, queries = ground_truth.from_shards(str(run.data_dir), "test")
    served = scoring.score(dataset, queries, predictions.from_records(records, queries, "served"))

    metrics_path = tmp_path / "metrics.json"
    result = export_testing.run_module(
        [
            "-m",
            "vlanet_tf.evaluate",
            f"--model_dir={run.model_dir}",
            f"--data_dir={run.data_dir}",
            "--split=test",
            f"--output={metrics_path}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cli = json.loads(metrics_path.read_text())
    assert served["R1@0.5"] == pytest.approx(cli["R1@0.5"], abs=1e-9)
    assert served == pytest.approx({k: cli[k] for k in served}, abs=1e-9)


def test_models_config_names_the_model_the_clients_ask_for():
    pytest.importorskip("tensorflow_serving")
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = export_testing.REPO / "export" / "models.config"
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == client.DEFAULT_MODEL_NAME
    assert model.base_path == "/models/vlanet" and model.model_platform == "tensorflow"
