"""Frames decoded on the server, for videos the browser cannot play (MPEG-4 part 2 exists in real
LeRobot datasets; Chromium plays AV1, H.264 and VP9 but not it).

    GET /api/frame/N?camera=KEY&frame=F   -> image/jpeg: frame F (episode-local) of episode N's camera

Decoding is `sarm.data`'s (`LeRobotDataset.decode`, PyAV: the frame nearest the episode's timestamp,
v3.0 offsets included), so every codec `sarm.data` reads can be shown; the JPEG is encoded with PyAV's
mjpeg encoder (no image library needed).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def encode_jpeg(image: np.ndarray) -> bytes:
    """uint8 `(H, W, 3)` RGB -> JPEG bytes (PyAV's mjpeg encoder, full-range YUV 4:2:0)."""
    import av

    height, width = image.shape[:2]
    even = np.ascontiguousarray(image[: height - height % 2, : width - width % 2])  # 4:2:0 wants even sizes
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = even.shape[1], even.shape[0]
    codec.pix_fmt, codec.time_base = "yuvj420p", Fraction(1, 25)
    codec.options = {"q:v": "3"}
    frame = av.VideoFrame.from_ndarray(even, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def decode_frame(ds, camera: str, episode: int, frame: int) -> np.ndarray:
    """Frame `frame` of `episode`'s `camera` as RGB; KeyError (unknown episode / camera) or ValueError."""
    if episode not in set(ds.episodes.tolist()):
        raise KeyError(f"episode {episode} is not in the dataset")
    if camera not in ds.camera_keys:
        raise KeyError(f"camera {camera!r} is not in the dataset; cameras: {ds.camera_keys}")
    for _, images in ds.decode(camera, episode, [frame], chunk=1):
        return images[0]
    raise ValueError(f"frame {frame} of episode {episode} decoded to nothing")


def frame_route(handler, catalog, episode: int, query: dict) -> None:
    """`GET /api/frame/N?camera=&frame=`: the JPEG, 404 for an unknown episode / camera, 400 otherwise."""
    camera = (query.get("camera") or [""])[0]
    try:
        frame = int((query.get("frame") or ["0"])[0])
        image = decode_frame(catalog.ds, camera, episode, frame)
    except KeyError as err:
        return handler._error(404, str(err.args[0]))
    except (ValueError, NotImplementedError) as err:  # DatasetError (decode, missing file) is one
        return handler._error(400, str(err).splitlines()[0])
    return handler._send(200, encode_jpeg(image), "image/jpeg")
