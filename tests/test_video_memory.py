"""Extraction memory does not grow with the video's length: the peak RSS of extracting a
10-minute video is within 20% of a 1-minute one's (each in its own process).

The files are 160 x 120 so that holding every decoded frame of 10 minutes (about 800 MB
at 24 fps) would show; the backbone sees 32 x 32 images, so it is fast.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import data_testing
from tests import video_testing as vt

CHILD = """
import resource, sys
from vlanet_tf.video import extract
from vlanet_tf.video.extractor import Extractor
extractor = Extractor("tiny_cnn", sys.argv[2], image_size=32)
report = extract.extract_store([("v", sys.argv[1])], extractor, sys.argv[3])
print(report["extracted"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kb(video, weights, output) -> int:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(video), str(weights), str(output)],
        cwd=data_testing.Path(__file__).resolve().parents[1],
        env=data_testing.env_with_repo_on_path(), capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    extracted, rss = result.stdout.split()[-2:]
    assert extracted == "1"
    return int(rss)


@pytest.mark.slow
def test_ten_minutes_peak_rss_within_20_percent_of_one_minute(tmp_path):
    weights = vt.tiny_weights(tmp_path / "tiny.weights.h5")
    videos = {}
    for minutes in (1, 10):
        videos[minutes] = vt.write_video(
            tmp_path / f"{minutes}min.mp4", 60 * minutes, fps=24, size=160,
            shape="square", colour="red", appear=(10, 30), codec="libx264", height=120,
        )
    rss = {m: _peak_rss_kb(v, weights, tmp_path / f"{m}.h5") for m, v in videos.items()}
    print(f"\npeak RSS: 1 min {rss[1] / 1024:.0f} MB, 10 min {rss[10] / 1024:.0f} MB")
    assert rss[10] <= 1.2 * rss[1]
