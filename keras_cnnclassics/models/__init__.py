"""Model families; importing this package registers every model.

One module per family. Each module defines its blocks and builder, one explicit
public constructor per model under ``@register_model`` (whose registry entry
declares everything the tools need: family, preprocessing, torch mapping,
reference, published numbers, stage-end layers) and exports ``preprocess_input``.
A family module imports only the building blocks, layers, initialisers,
preprocessing, the torch mapping declarations and the registry: never a tool.
"""

from keras_cnnclassics.models.lenet import *  # noqa: F401,F403
from keras_cnnclassics.models.alexnet import *  # noqa: F401,F403
from keras_cnnclassics.models.zfnet import *  # noqa: F401,F403
from keras_cnnclassics.models.vgg import *  # noqa: F401,F403
from keras_cnnclassics.models.resnet import *  # noqa: F401,F403
from keras_cnnclassics.models.resnet_v2 import *  # noqa: F401,F403
from keras_cnnclassics.models.resnet_cifar import *  # noqa: F401,F403
from keras_cnnclassics.models.googlenet import *  # noqa: F401,F403
from keras_cnnclassics.models.inception import *  # noqa: F401,F403
from keras_cnnclassics.models.squeezenet import *  # noqa: F401,F403
from keras_cnnclassics.models.densenet import *  # noqa: F401,F403
from keras_cnnclassics.models.nin import *  # noqa: F401,F403
from keras_cnnclassics.models.fractalnet import *  # noqa: F401,F403
