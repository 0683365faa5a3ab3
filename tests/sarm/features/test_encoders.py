"""sarm.features.encoders: preprocessing checked by hand, tiny and full-size CLIP, pixel encoder."""

import numpy as np
import pytest
import torch

from sarm.features.encoders import CLIPEncoder, PixelEncoder, load_encoder, preprocess_images

# OpenAI CLIP's normalisation constants (open_clip.OPENAI_DATASET_MEAN / _STD), written out here
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RED, BLUE = (255, 0, 0), (0, 0, 255)


def normalized(rgb, mean=OPENAI_MEAN, std=OPENAI_STD) -> np.ndarray:
    """The expected per-channel value of a pixel of colour `rgb` after preprocessing."""
    return np.array([(v / 255.0 - m) / s for v, m, s in zip(rgb, mean, std, strict=True)])


def frames(n: int, height: int = 40, width: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def constant(colour, n: int = 1, height: int = 32, width: int = 32) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.uint8).expand(n, height, width, 3).contiguous()


def striped(height: int, width: int, border: int, vertical: bool) -> torch.Tensor:
    """A blue image whose first and last `border` columns (vertical) or rows are red: (1, H, W, 3)."""
    image = constant(BLUE, 1, height, width).clone()
    red = torch.tensor(RED, dtype=torch.uint8)
    if vertical:
        image[:, :, :border], image[:, :, width - border :] = red, red
    else:
        image[:, :border], image[:, height - border :] = red, red
    return image


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("open_clip")
    return load_encoder("clip:sarm-tiny")


# ---------------------------------------------------------------------------------- preprocess_images


@pytest.mark.parametrize(("height", "width", "size"), [(48, 80, 64), (48, 80, 32), (64, 64, 64), (7, 5, 24)])
def test_preprocess_constant_colour_gives_the_hand_normalised_value(height, width, size):
    colours = [(200, 100, 50), (0, 128, 255)]
    images = torch.cat([constant(c, 1, height, width) for c in colours])
    out = preprocess_images(images, size, OPENAI_MEAN, OPENAI_STD)
    assert out.shape == (2, 3, size, size) and out.dtype == torch.float32
    for b, colour in enumerate(colours):
        expected = np.broadcast_to(normalized(colour)[:, None, None], (3, size, size))
        np.testing.assert_allclose(out[b].numpy(), expected, atol=1e-5)


def test_preprocess_uses_the_given_mean_and_std():
    out = preprocess_images(constant((51, 102, 153), 1, 10, 10), 10, (0.0, 0.5, 1.0), (1.0, 2.0, 0.5))
    # (0.2 - 0) / 1, (0.4 - 0.5) / 2, (0.6 - 1) / 0.5
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [0.2, -0.05, -0.8], atol=1e-6)


@pytest.mark.parametrize("vertical", [True, False])
def test_preprocess_centre_crop_keeps_only_the_middle(vertical):
    """64 x 128 (or 128 x 64): the shorter side is already 64, so the crop is the middle 64 columns (rows),
    which are all blue; the red borders are cut off."""
    height, width = (64, 128) if vertical else (128, 64)
    out = preprocess_images(striped(height, width, 32, vertical), 64, OPENAI_MEAN, OPENAI_STD)
    assert out.shape == (1, 3, 64, 64)
    expected = np.broadcast_to(normalized(BLUE)[:, None, None], (3, 64, 64))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)


def test_preprocess_upscales_then_crops_the_centre():
    """32 x 64 -> 64 x 128 (x2): the crop is upscaled columns 32..95, i.e. source columns 16..47 (blue);
    bicubic blurs a few columns at each edge, the interior is pure blue, and no column is pure red."""
    out = preprocess_images(striped(32, 64, 16, vertical=True), 64, OPENAI_MEAN, OPENAI_STD)[0].numpy()
    assert out.shape == (3, 64, 64)
    blue, red = normalized(BLUE), normalized(RED)
    np.testing.assert_allclose(out[:, :, 6:58], np.broadcast_to(blue[:, None, None], (3, 64, 52)), atol=1e-5)
    assert np.abs(out[0] - red[0]).min() > 0.5  # red channel: never close to the red border's value


@pytest.mark.parametrize(("height", "width"), [(20, 30), (30, 20), (300, 17), (64, 64), (500, 640)])
def test_preprocess_always_gives_a_square_of_the_asked_size(height, width):
    images = torch.from_numpy(frames(3, height, width))
    out = preprocess_images(images, 48, OPENAI_MEAN, OPENAI_STD)
    assert out.shape == (3, 3, 48, 48) and torch.isfinite(out).all()
    lo, hi = normalized((0, 0, 0)), normalized((255, 255, 255))
    for c in range(3):  # resized pixels are clamped to [0, 1] before normalising
        assert lo[c] - 1e-5 <= out[:, c].min() and out[:, c].max() <= hi[c] + 1e-5


# ------------------------------------------------------------------------------------------ CLIP (tiny)


def test_tiny_clip_facts(tiny):
    assert isinstance(tiny, CLIPEncoder)
    assert tiny.spec == "clip:sarm-tiny" and tiny.image_dim == 512 and tiny.text_dim == 512
    assert tiny.device == torch.device("cpu") or torch.cuda.is_available()
    info = tiny.describe()
    assert (info["spec"], info["image_dim"], info["text_dim"]) == ("clip:sarm-tiny", 512, 512)
    pre = info["preprocessing"]
    assert pre["image_size"] == 64 and pre["crop"] == "center"
    assert pre["mean"] == pytest.approx(OPENAI_MEAN) and pre["std"] == pytest.approx(OPENAI_STD)
    assert info["normalized"] is False


def test_tiny_clip_encode_images_shapes_dtype_device(tiny):
    out = tiny.encode_images(frames(5))
    assert out.shape == (5, 512) and out.dtype == torch.float32 and out.device == torch.device("cpu")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(tiny.encode_images(torch.from_numpy(frames(5))), out, rtol=0, atol=0)
    empty = tiny.encode_images(np.zeros((0, 40, 56, 3), np.uint8))
    assert empty.shape == (0, 512)


def test_tiny_clip_chunking_does_not_change_features(tiny):
    images = frames(7)
    saved = tiny.batch_size
    try:
        tiny.batch_size = 3  # chunks of 3, 3, 1
        chunked = tiny.encode_images(images)
        tiny.batch_size = 64  # one chunk
        whole = tiny.encode_images(images)
    finally:
        tiny.batch_size = saved
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    single = torch.cat([tiny.encode_images(images[i : i + 1]) for i in range(len(images))])
    torch.testing.assert_close(single, whole, rtol=0, atol=1e-5)


def test_tiny_clip_is_deterministic_and_sees_the_image(tiny):
    images = frames(3)
    first, second = tiny.encode_images(images), tiny.encode_images(images)
    assert torch.equal(first, second)
    assert not torch.allclose(first[0], first[1], atol=1e-3)  # different frames, different features


def test_tiny_clip_encode_texts(tiny):
    out = tiny.encode_texts(["pick the cube", "place the cube", "pick the cube"])
    assert out.shape == (3, 512) and out.dtype == torch.float32 and out.device == torch.device("cpu")
    assert torch.equal(out[0], out[2])
    assert not torch.allclose(out[0], out[1], atol=1e-3)
    torch.testing.assert_close(tiny.encode_texts(("place the cube",))[0], out[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((2, 32, 32, 3), np.float32),  # wrong dtype
        np.zeros((2, 32, 32, 3), np.int64),
        np.zeros((32, 32, 3), np.uint8),  # no batch axis
        np.zeros((2, 3, 32, 32), np.uint8),  # channels first
        np.zeros((2, 32, 32, 4), np.uint8),  # RGBA
    ],
)
def test_encode_images_refuses_anything_but_uint8_nhwc_rgb(tiny, images):
    with pytest.raises(ValueError, match=r"images should be uint8 \(n, H, W, 3\)") as info:
        tiny.encode_images(images)
    assert str(tuple(images.shape)) in str(info.value)
    with pytest.raises(ValueError, match="uint8"):
        PixelEncoder(8).encode_images(images)


@pytest.mark.parametrize("texts", ["pick the cube", ["pick", 3], [None]])
def test_encode_texts_needs_a_sequence_of_strings(tiny, texts):
    with pytest.raises(TypeError, match="texts should be a sequence of strings"):
        tiny.encode_texts(texts)
    with pytest.raises(TypeError, match="texts should be a sequence of strings"):
        PixelEncoder(8).encode_texts(texts)


@pytest.mark.parametrize("spec", ["foo:bar", "clip", "clip:", "vit:ViT-B-32", ""])
def test_unknown_spec_lists_the_valid_forms(spec):
    with pytest.raises(ValueError, match="unknown encoder spec") as info:
        load_encoder(spec)
    message = str(info.value)
    assert repr(spec) in message
    for form in ("'clip:<model>/<pretrained>'", "'clip:<model>'", "'clip:sarm-tiny'", "'pixels[:<dim>]'"):
        assert form in message


def test_clip_argument_errors():
    pytest.importorskip("open_clip")
    with pytest.raises(ValueError, match=r"precision should be 'fp32', 'fp16' or 'bf16', but got 'fp99'"):
        load_encoder("clip:sarm-tiny", precision="fp99")
    with pytest.raises(
        ValueError, match="batch_size should be a positive integer value, but got batch_size=0"
    ):
        load_encoder("clip:sarm-tiny", batch_size=0)


def test_random_weight_clip_is_a_function_of_its_spec(tiny):
    # The spec is what a feature cache's manifest records, and `extract_features` resumes a cache (or lets
    # other `--shard` ranks add episodes) whenever the spec matches: random weights must follow the spec.
    images = frames(2)
    torch.rand(1000)  # whatever the caller's RNG has done in between
    again = load_encoder("clip:sarm-tiny")
    torch.testing.assert_close(again.encode_images(images), tiny.encode_images(images), rtol=0, atol=1e-5)


def test_building_a_random_weight_clip_leaves_the_global_rng_alone():
    # building an encoder must not advance the caller's torch RNG (no hidden global state)
    pytest.importorskip("open_clip")
    state = torch.get_rng_state()
    load_encoder("clip:sarm-tiny")
    assert torch.equal(torch.get_rng_state(), state)


def test_full_size_vit_b_32_with_random_weights():
    """The default architecture (what "clip:ViT-B-32/openai" uses) without downloading any weights."""
    pytest.importorskip("open_clip")
    encoder = load_encoder("clip:ViT-B-32", batch_size=2)
    assert encoder.spec == "clip:ViT-B-32" and encoder.image_size == 224
    assert encoder.describe()["preprocessing"]["image_size"] == 224
    out = encoder.encode_images(frames(2, 96, 128))
    assert out.shape == (2, 512) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert encoder.encode_texts(["fold the towel"]).shape == (1, 512)


# ------------------------------------------------------------------------------------------- pixels


@pytest.mark.parametrize(
    ("spec", "dim", "seed", "canonical"),
    [
        ("pixels", 512, 0, "pixels:512"),
        ("pixels:64", 64, 0, "pixels:64"),
        ("pixels:64/seed3", 64, 3, "pixels:64/seed3"),
        ("pixels:7/seed0", 7, 0, "pixels:7"),
    ],
)
def test_pixel_specs(spec, dim, seed, canonical):
    encoder = load_encoder(spec)
    assert isinstance(encoder, PixelEncoder)
    assert (encoder.image_dim, encoder.text_dim, encoder.seed, encoder.spec) == (dim, dim, seed, canonical)
    assert encoder.describe() == {"spec": canonical, "image_dim": dim, "text_dim": dim}
    images = encoder.encode_images(frames(3))
    texts = encoder.encode_texts(["a", "b"])
    assert images.shape == (3, dim) and texts.shape == (2, dim)
    assert images.dtype == texts.dtype == torch.float32


def test_pixel_encoder_is_a_function_of_dim_and_seed():
    images, texts = frames(4), ["pick the cube", "place the cube"]
    a, b = load_encoder("pixels:64/seed3"), PixelEncoder(64, seed=3)
    torch.rand(100)  # the global RNG plays no part
    c = load_encoder("pixels:64/seed4")
    assert torch.equal(a.encode_images(images), b.encode_images(images))
    assert torch.equal(a.encode_texts(texts), b.encode_texts(texts))
    assert not torch.allclose(a.encode_images(images), c.encode_images(images))
    assert not torch.allclose(a.encode_texts(texts), c.encode_texts(texts))


def test_pixel_text_features_follow_the_text():
    encoder = PixelEncoder(64)
    out = encoder.encode_texts(["fold the towel", "open the drawer", "fold the towel"])
    assert torch.equal(out[0], out[2])
    assert not torch.allclose(out[0], out[1])
    assert torch.equal(encoder.encode_texts(["open the drawer"])[0], out[1])


def test_pixel_image_features_follow_the_pixels():
    encoder = PixelEncoder(64)
    black, grey, white = (constant((v, v, v), 1, 40, 56) for v in (0, 51, 255))
    red, blue = constant(RED, 1, 40, 56), constant(BLUE, 1, 40, 56)
    out = encoder.encode_images(torch.cat([black, grey, white, red, blue]))
    assert out.shape == (5, 64)
    assert torch.equal(out[0], torch.zeros(64))  # black thumbnail is all zeros: a linear map gives 0
    torch.testing.assert_close(out[1], 0.2 * out[2], rtol=1e-5, atol=1e-6)  # 51 / 255 of white
    assert not torch.allclose(out[3], out[4]) and not torch.allclose(out[2], out[3])
    # frames of another size with the same 8 x 8 thumbnail give the same features
    torch.testing.assert_close(encoder.encode_images(constant(RED, 2, 16, 24)), out[3:4].expand(2, 64))


def test_pixel_encoder_rejects_a_bad_dim():
    with pytest.raises(ValueError, match="dim should be a positive integer value, but got dim=0"):
        load_encoder("pixels:0")
    with pytest.raises(ValueError, match="dim should be a positive integer value"):
        PixelEncoder(-3)


def test_pixel_encoder_validates_batch_size_like_clip():
    # without this check, batch_size=0 only failed later inside encode_images with Python's
    # "range() arg 3 must not be zero", while CLIPEncoder refuses it up front in torch's wording
    with pytest.raises(
        ValueError, match="batch_size should be a positive integer value, but got batch_size=0"
    ):
        PixelEncoder(8, batch_size=0)
