"""kc.visualize and ``cnnclassics show``: feature maps, filters, Grad-CAM, saliency, pictures.

Cross-backend agreement: each backend's Grad-CAM and saliency of a hand-built model are
compared with the same closed-form NumPy computation (the model's gradients can be written
down), to ``ATOL`` on maps scaled to [0, 1]; so the three backend runs of this file agree
with each other to within twice that.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

import keras_cnnclassics as kc
from keras_cnnclassics import cli, visualize

ATOL = 1e-5  # float32 maps in [0, 1]
SIZE = 16  # the hand-built model's input: 16x16x3, quadrant 8x8
FILTERS = 4


def _photo(index, size):
    """scikit-learn's sample photo ``index`` (0: china.jpg, 1: flower.jpg) as uint8 (size, size, 3)."""
    photo = load_sample_images().images[index]
    return np.asarray(Image.fromarray(photo).resize((size, size), Image.BILINEAR))


# ------------------------------------------------------------------ hand-built model


def _quadrant_mask():
    mask = np.zeros((SIZE, SIZE, 1), "float32")
    mask[: SIZE // 2, : SIZE // 2] = 1.0
    return mask


def _quadrant_weights():
    rs = np.random.RandomState(0)
    kernel = rs.normal(0, 0.5, (3, 3, 3, FILTERS)).astype("float32")
    bias = np.full((FILTERS,), 0.1, "float32")
    scores = np.abs(rs.normal(0, 1, (FILTERS, 1))).astype("float32")
    dense = np.concatenate([scores, -0.5 * scores], axis=1)  # class 0 wins on positive features
    return kernel, bias, dense, np.zeros((2,), "float32")


def _quadrant_model():
    """conv (ReLU) -> keep only the top-left quadrant -> global average -> dense -> softmax:
    both class logits read the top-left quadrant and nothing else."""
    mask = _quadrant_mask()
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(FILTERS, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Lambda(lambda t: keras.ops.multiply(t, keras.ops.convert_to_tensor(mask)), name="mask")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(2, name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="quadrant")
    kernel, bias, dense, dense_bias = _quadrant_weights()
    model.get_layer("conv").set_weights([kernel, bias])
    model.get_layer("logits").set_weights([dense, dense_bias])
    return model


def _numpy_conv(image, kernel, bias):
    """Keras' Conv2D (cross-correlation, "same" padding, stride 1) in NumPy, pre-activation."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((SIZE, SIZE, kernel.shape[-1]))
    for di in range(3):
        for dj in range(3):
            out += padded[di : di + SIZE, dj : dj + SIZE] @ kernel[di, dj]
    return out + bias


def _numpy_grad_cam(image, class_index, masked_layer):
    """Closed form: d logit_k / d A = V[:, k] / (H W) at the masked layer, times the mask at
    the conv layer; alpha_c is its spatial mean."""
    kernel, bias, dense, _ = _quadrant_weights()
    mask = _quadrant_mask()
    activations = np.maximum(_numpy_conv(image, kernel, bias), 0.0)
    grads = np.broadcast_to(dense[:, class_index] / SIZE**2, activations.shape) * mask
    if masked_layer:
        activations = activations * mask
    cam = np.maximum(activations @ grads.mean(axis=(0, 1)), 0.0)
    return cam / cam.max()


def _numpy_saliency(image, class_index):
    """|d logit_k / d x| maxed over channels: the ReLU-gated, masked backward pass of the conv."""
    kernel, bias, dense, _ = _quadrant_weights()
    pre = _numpy_conv(image, kernel, bias)
    upstream = (pre > 0) * _quadrant_mask() * dense[:, class_index] / SIZE**2  # d logit / d conv output
    grad = np.zeros((SIZE + 2, SIZE + 2, 3))
    for di in range(3):
        for dj in range(3):
            grad[di : di + SIZE, dj : dj + SIZE] += upstream @ kernel[di, dj].T
    heat = np.abs(grad[1:-1, 1:-1]).max(axis=-1)
    return heat / heat.max()


@pytest.fixture(scope="module")
def quadrant():
    image = _photo(0, SIZE).astype("float32") / 255.0
    return _quadrant_model(), image


def _quadrant_share(heat):
    half_h, half_w = heat.shape[0] // 2, heat.shape[1] // 2
    return heat[:half_h, :half_w].sum() / heat.sum()


def test_grad_cam_mass_lies_in_the_quadrant_the_logit_reads(quadrant):
    model, image = quadrant
    heat = visualize.grad_cam(model, image)  # default layer: "mask", the last spatial one
    assert heat.shape == (SIZE, SIZE)
    assert _quadrant_share(heat) > 0.9


@pytest.mark.parametrize("layer", [None, "conv"])
@pytest.mark.parametrize("class_index", [None, 0])
def test_grad_cam_equals_the_closed_form(quadrant, layer, class_index):
    model, image = quadrant
    heat = visualize.grad_cam(model, image[None], class_index=class_index, layer=layer)
    expected = _numpy_grad_cam(image, 0, masked_layer=layer is None)
    np.testing.assert_allclose(heat, expected, atol=ATOL)


def test_saliency_equals_the_closed_form_and_stays_in_the_field_of_the_quadrant(quadrant):
    model, image = quadrant
    heat = visualize.saliency(model, image, class_index=0)
    np.testing.assert_allclose(heat, _numpy_saliency(image, 0), atol=ATOL)
    reach = SIZE // 2 + 1  # the quadrant grown by the 3x3 conv's one-pixel radius
    assert heat[reach:].max() == 0 and heat[:, reach:].max() == 0
    assert heat[: SIZE // 2, : SIZE // 2].max() == 1.0


def test_grad_cam_rejects_a_bad_class_index_and_a_bad_image(quadrant):
    model, image = quadrant
    with pytest.raises(ValueError, match="class_index must be an integer in 0..1"):
        visualize.grad_cam(model, image, class_index=2)
    with pytest.raises(ValueError, match="expected one preprocessed image of shape"):
        visualize.saliency(model, np.stack([image, image]))


# ------------------------------------------------------------------ registry models


@pytest.fixture(scope="module")
def resnet18():
    return kc.get_model("resnet18", input_shape=(64, 64, 3))


def _preprocessed(index, size):
    batch = _photo(index, size)[None].astype("float32") / 255.0
    return batch if keras.config.image_data_format() == "channels_last" else batch.transpose(0, 3, 1, 2)


def test_feature_maps_default_to_the_stage_ends_with_feature_info_shapes(resnet18):
    maps = visualize.feature_maps(resnet18, _preprocessed(1, 64))
    info = kc.feature_info(resnet18)
    assert list(maps) == [entry["layer"] for entry in info]
    for entry in info:
        side = 64 // entry["reduction"]
        assert maps[entry["layer"]].shape == (side, side, entry["channels"])


def test_a_layer_that_a_residual_path_bypasses_is_refused_clearly(resnet18):
    with pytest.raises(ValueError, match="another path of the graph bypasses it"):
        visualize.grad_cam(resnet18, _preprocessed(0, 64), layer="layer4_1_conv1")


@pytest.mark.parametrize("name, shape", [("alexnet", (64, 11, 11, 3)), ("zfnet", (96, 7, 7, 3))])
def test_first_layer_filters_are_rgb_tiles_each_scaled_to_unit_range(name, shape):
    tiles = visualize.filters(kc.get_model(name, include_top=False, input_shape=(96, 96, 3)))
    assert tiles.shape == shape
    np.testing.assert_allclose(tiles.min(axis=(1, 2, 3)), 0.0)
    np.testing.assert_allclose(tiles.max(axis=(1, 2, 3)), 1.0)


def test_deeper_filters_are_drawn_per_input_channel(resnet18, tmp_path):
    tiles = visualize.filters(resnet18, "layer1_0_conv1")
    assert tiles.shape == (64, 3, 3, 64)
    path = tmp_path / "deep.png"
    visualize.plot_filters(tiles, path)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and min(picture.size) > 100
    with pytest.raises(FileExistsError, match="already exists"):
        visualize.plot_filters(tiles, path)


# ------------------------------------------------------------------ cnnclassics show


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "flower.png"
    Image.fromarray(_photo(1, 96)).save(path)
    return path


def _show(capsys, *argv):
    code = cli.main(["show", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind, extra", [
    ("gradcam", ["--class-index", "3"]), ("saliency", []), ("features", ["--layer", "c1", "--layer", "c3"]),
    ("filters", []),
])
def test_show_writes_a_readable_png(capsys, tmp_path, photo_file, kind, extra):
    out = tmp_path / f"{kind}.png"
    image = [] if kind == "filters" else [photo_file]
    code, stdout, err = _show(capsys, kind, *image, "--model", "lenet5", "--out", out, *extra)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as picture:
        picture.load()
        assert picture.format == "PNG" and picture.size[0] >= 300 and picture.size[1] >= 100


def test_show_refuses_to_overwrite_without_force(capsys, tmp_path, photo_file):
    out = tmp_path / "cam.png"
    out.write_bytes(b"keep me")
    code, _, err = _show(capsys, "gradcam", photo_file, "--model", "lenet5", "--out", out)
    assert code == 2 and "already exists; pass --force" in err
    assert out.read_bytes() == b"keep me"
    code, _, err = _show(capsys, "gradcam", photo_file, "--model", "lenet5", "--out", out, "--force")
    assert code == 0, err
    with Image.open(out) as picture:
        assert picture.format == "PNG"


def test_show_without_an_image_or_with_a_bad_layer_says_so(capsys, tmp_path, photo_file):
    with pytest.raises(SystemExit) as exit_info:
        _show(capsys, "gradcam", "--model", "lenet5", "--out", tmp_path / "x.png")
    assert exit_info.value.code == 2
    assert "IMAGE" in capsys.readouterr().err
    code, _, err = _show(capsys, "gradcam", photo_file, "--model", "lenet5", "--out", tmp_path / "x.png",
                         "--layer", "nope")
    assert code == 2 and "has no layer 'nope'" in err
    assert not (tmp_path / "x.png").exists()
