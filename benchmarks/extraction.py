"""Feature extraction speed on this machine: decoding and each backbone, separately.

    python -m benchmarks.extraction [--width=480 --height=360 --seconds=20]
        [--backbones=mobilenet_v3_small,efficientnet_b0,vgg16_fc7] [--batch_size=16]

Prints (does not assert) frames per second of
- decode: PyAV decoding of an H.264 file written here (a panning texture), resampled to 24 fps, with the
  frames the charades style samples (4 of every 16) converted to 224 x 224 RGB, i.e.
  everything the extractor does except the backbone, per resampled frame;
- each backbone: 224 x 224 images through the network (random weights: speed does not
  depend on their values), per image.
Extraction sends frames_per_clip / clip_frames of the frames (1/4 for charades) through
the backbone, so it is backbone-bound while decode frames/s exceeds 4x the backbone's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def write_moving_video(path: str, seconds: float, width: int, height: int) -> None:
    """H.264 at 24 fps of a textured background panning 3 px a frame, so that the
    encoder cannot reduce it to skipped blocks (closer to camera footage than a still)."""
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width + 24 * int(seconds) * 3, 3), np.uint8)
    texture = ((texture.astype(np.uint16) + np.roll(texture, 1, 1)) // 2).astype(np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * 24)):
            image = np.ascontiguousarray(texture[:, 3 * i : 3 * i + width])
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _decode_rate(path: str, size: int, seconds: float) -> tuple[float, float]:
    from vlanet_tf.video import decode

    start = time.perf_counter()
    n = sum(1 for _ in decode.resampled_frames(path, 24.0, lambda k: k % 16 in (2, 6, 10, 14),
                                               size))
    elapsed = time.perf_counter() - start
    return n / elapsed, elapsed


def _backbone_rate(name: str, batch_size: int, budget_s: float) -> float:
    import keras

    from vlanet_tf.video import backbones

    model = backbones._application(name, 224, None)
    preprocess = backbones._preprocess(name)
    import tensorflow as tf

    embed = tf.function(lambda x: model(preprocess(x), training=False))
    images = tf.constant(
        np.random.default_rng(0).uniform(0, 255, (batch_size, 224, 224, 3)).astype(np.float32)
    )
    embed(images)  # trace and warm up
    done, start = 0, time.perf_counter()
    while done < 2 * batch_size or time.perf_counter() - start < budget_s:
        embed(images).numpy()
        done += batch_size
    rate = done / (time.perf_counter() - start)
    keras.backend.clear_session()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backbones", default="mobilenet_v3_small,efficientnet_b0,vgg16_fc7")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--budget_s", type=float, default=10.0, help="Per backbone.")
    args = parser.parse_args()

    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.mp4")
        write_moving_video(path, args.seconds, args.width, args.height)
        decode_fps, elapsed = _decode_rate(path, 224, args.seconds)
    print(f"decode   {args.width}x{args.height} H.264 -> 24 fps, 1/4 to 224px RGB: "
          f"{decode_fps:8.1f} frames/s ({elapsed:.1f}s for {args.seconds:g}s of video)")
    for name in args.backbones.split(","):
        rate = _backbone_rate(name, args.batch_size, args.budget_s)
        print(f"backbone {name:<20} 224px, batch {args.batch_size}: {rate:8.1f} frames/s; "
              f"decode / backbone = {decode_fps / rate:6.1f} (charades needs >= 4 to be "
              "backbone-bound)")


if __name__ == "__main__":
    main()
