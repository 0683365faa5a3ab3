"""sarm.data.video.decode_at on tiny videos: the right frames, each decoded once, one seek per call."""

from fractions import Fraction

import numpy as np
import pytest

from sarm.data import video
from sarm.data.video import FrameNotFoundError, decode_at

av = pytest.importorskip("av")

FPS = 30
# libx264 keeps flat gray frames within 1 level and uses B-frames (pts reordering); mpeg4 is the fallback
CODEC, OPTIONS = (
    ("libx264", {"g": "10", "keyint_min": "10", "sc_threshold": "0", "crf": "5"})
    if "libx264" in av.codecs_available
    else ("mpeg4", {"g": "10", "sc_threshold": "1000000000", "qscale": "1"})
)


def gray(position):
    """Gray level of video frame `position`: steps of 7, so compression noise never confuses neighbours."""
    return 16 + (np.asarray(position) * 7) % 224


def write_video(path, levels, fps=FPS):
    """A 32x32 video whose frame p is filled with gray level `levels[p]`, keyframe every 10 frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=fps, options=OPTIONS)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for k, level in enumerate(levels):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), level, np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def levels_of(images):
    """Mean gray level per image, rounded."""
    return np.rint(images.reshape(len(images), -1).mean(axis=1)).astype(int)


class CountingContainer:
    """Wraps a PyAV container and counts seeks and the frames its decoder yields."""

    def __init__(self, container):
        self.container, self.seeks, self.decoded = container, 0, []

    @property
    def streams(self):
        return self.container.streams

    def seek(self, *args, **kwargs):
        self.seeks += 1
        return self.container.seek(*args, **kwargs)

    def decode(self, *args, **kwargs):
        for frame in self.container.decode(*args, **kwargs):
            self.decoded.append(frame.pts)
            yield frame

    def close(self):
        self.container.close()


@pytest.fixture
def spy(monkeypatch):
    """Every container `decode_at` opens, wrapped in a CountingContainer (list, in opening order)."""
    opened = []
    real_open = video._open

    def counting_open(path):
        opened.append(CountingContainer(real_open(path)))
        return opened[-1]

    monkeypatch.setattr(video, "_open", counting_open)
    return opened


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", gray(np.arange(60)))


def test_decode_subset_gives_the_right_frames_each_decoded_once_after_one_seek(clip, spy):
    wanted = np.array([12, 13, 18])
    chunks = list(decode_at(clip, wanted / FPS, tolerance_s=0.5 / FPS))
    positions = np.concatenate([p for p, _ in chunks])
    images = np.concatenate([i for _, i in chunks])
    np.testing.assert_array_equal(positions, [0, 1, 2])
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_allclose(levels_of(images), gray(wanted), atol=3)
    (container,) = spy
    assert container.seeks == 1
    assert len(container.decoded) == len(set(container.decoded))  # no frame decoded twice
    # from the keyframe at 10 to the frame after 18 at most: no re-seek, no decoding to the end
    assert len(container.decoded) <= 18 - 10 + 2


def test_decode_all_frames_in_chunks_matches_the_subset(clip):
    chunks = list(decode_at(clip, np.arange(60) / FPS, tolerance_s=0.5 / FPS, chunk=16))
    assert [len(p) for p, _ in chunks] == [16, 16, 16, 12]
    positions = np.concatenate([p for p, _ in chunks])
    images = np.concatenate([i for _, i in chunks])
    np.testing.assert_array_equal(positions, np.arange(60))
    np.testing.assert_allclose(levels_of(images), gray(np.arange(60)), atol=3)
    (subset,) = [i for _, i in decode_at(clip, np.array([0, 7, 59]) / FPS, tolerance_s=0.5 / FPS)]
    np.testing.assert_array_equal(subset, images[[0, 7, 59]])


def test_nearest_frame_wins_and_equal_timestamps_share_it(clip):
    # 0.4 frame late still shows frame 5; two requests for frame 20 give the same pixels
    times = np.array([5.4, 20.0, 20.0]) / FPS
    ((positions, images),) = list(decode_at(clip, times, tolerance_s=0.5 / FPS))
    np.testing.assert_array_equal(positions, [0, 1, 2])
    np.testing.assert_allclose(levels_of(images), gray([5, 20, 20]), atol=3)
    np.testing.assert_array_equal(images[1], images[2])


def test_timestamp_past_the_end_names_the_nearest_frame(clip):
    with pytest.raises(FrameNotFoundError, match="nearest frame is at 1.966667 s") as info:
        list(decode_at(clip, np.array([58, 65]) / FPS, tolerance_s=0.5 / FPS))
    assert info.value.position == 1
    assert info.value.expected == pytest.approx(65 / FPS)


def test_argument_errors(clip):
    with pytest.raises(ValueError, match="non-decreasing"):
        list(decode_at(clip, [0.5, 0.1], tolerance_s=0.01))
    with pytest.raises(ValueError, match="chunk should be a positive integer value, but got chunk=0"):
        list(decode_at(clip, [0.1], tolerance_s=0.01, chunk=0))
    assert list(decode_at(clip, [], tolerance_s=0.01)) == []
