"""Network in Network: the CIFAR-10 configuration, its count, and parity with a PyTorch port.

torchvision/timm have no NiN; the reference is the widely reproduced PyTorch
port of the authors' Caffe model (jiecaoyu/pytorch-nin-cifar10 ``original.py``),
written out below, with our Caffe layer names mapped onto its Sequential indices.
"""

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.convert import state_dict_to_keras
from keras_cnnclassics.registry import get_spec

from support.parity_tolerance import assert_logits_close
from support.reference import require

# (name, in, out, kernel) of every conv: three mlpconv blocks, the last ending in 10 class maps.
NIN_CONVS = [
    ("conv1", 3, 192, 5), ("cccp1", 192, 160, 1), ("cccp2", 160, 96, 1),
    ("conv2", 96, 192, 5), ("cccp3", 192, 192, 1), ("cccp4", 192, 192, 1),
    ("conv3", 192, 192, 3), ("cccp5", 192, 192, 1), ("cccp6", 192, 10, 1),
]


def test_parameter_count_by_arithmetic():
    by_hand = sum(k * k * cin * cout + cout for _, cin, cout, k in NIN_CONVS)
    assert by_hand == get_spec("nin").params == 966_986
    model = kc.NiN()
    assert kc.count_params(model) == by_hand
    for name, cin, cout, k in NIN_CONVS:
        assert tuple(model.get_layer(name).kernel.shape) == (k, k, cin, cout)


def test_no_fully_connected_layer_and_global_average_pooling():
    model = kc.NiN(classes=7)
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert model.get_layer("cccp6").output.shape == (None, 8, 8, 7)
    assert isinstance(model.get_layer("pool3"), keras.layers.GlobalAveragePooling2D)
    assert model.output_shape == (None, 7)


def test_stage_outputs_and_backbone():
    info = kc.feature_info("nin")
    assert [(i["layer"], i["reduction"], i["channels"]) for i in info] == [
        ("cccp2", 1, 96), ("cccp4", 2, 192), ("cccp5", 4, 192)
    ]
    backbone = kc.NiN(include_top=False, pooling="max", input_shape=(None, None, 3))
    assert backbone.output_shape == (None, 192)


def _torch_nin():
    """jiecaoyu/pytorch-nin-cifar10 ``original.py`` (the Caffe model zoo NiN)."""
    import torch.nn as nn

    def mlpconv(cin, spatial, k, widths):
        layers = [nn.Conv2d(cin, spatial, k, padding=k // 2), nn.ReLU()]
        for a, b in zip((spatial,) + widths[:-1], widths):
            layers += [nn.Conv2d(a, b, 1), nn.ReLU()]
        return layers

    model = nn.Sequential(
        *mlpconv(3, 192, 5, (160, 96)), nn.MaxPool2d(3, 2, 1), nn.Dropout(0.5),
        *mlpconv(96, 192, 5, (192, 192)), nn.AvgPool2d(3, 2, 1), nn.Dropout(0.5),
        *mlpconv(192, 192, 3, (192, 10)), nn.AvgPool2d(8, 1), nn.Flatten(),
    )
    for module in model:  # He init and non-zero biases keep the logits of order 1
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    return model.eval()


# our layer name -> index in the Sequential above (each conv is followed by a ReLU)
TORCH_INDEX = {
    "conv1": 0, "cccp1": 2, "cccp2": 4, "conv2": 8, "cccp3": 10, "cccp4": 12,
    "conv3": 16, "cccp5": 18, "cccp6": 20,
}


def test_logits_match_the_pytorch_port():
    torch = require("torch")
    torch.manual_seed(0)
    reference = _torch_nin()
    model = kc.NiN(classifier_activation=None)
    state_dict_to_keras(model, reference.state_dict(), name_map=lambda n: str(TORCH_INDEX[n]))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = np.asarray(model.predict(x, verbose=0))
    assert np.max(np.abs(expected)) > 0.5  # the final ReLU left informative logits
    assert_logits_close(got, expected)


@pytest.mark.parametrize("dropout", [1.0, -0.1, "half"])
def test_bad_dropout_is_refused(dropout):
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        kc.NiN(dropout=dropout)
