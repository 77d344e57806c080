"""Marks for tests that need something the machine may lack, probed rather than assumed.

TensorFlow's CPU convolutions accept ``channels_first`` only with oneDNN, which TensorFlow leaves
off by default on CPUs without AVX-512 (the package turns it on when it can, see
``keras_cnnclassics.backend_support``). With oneDNN forced off (``TF_ENABLE_ONEDNN_OPTS=0``) the
package refuses ``channels_first`` models, and these tests skip with the reason and the fix.
"""

import pytest

from keras_cnnclassics.backend_support import channels_first_problem

needs_channels_first = pytest.mark.skipif(
    channels_first_problem() is not None, reason=str(channels_first_problem())
)
