"""One tolerance for every logits-parity test: per logit, on a well-conditioned reference.

A tolerance scaled by the largest logit (``1e-4 * max|logit|``) means nothing when
random BatchNorm statistics blow logits up (Inception v3 reaches 1e12, so the
"tolerance" becomes 1e8). Here every logit must agree to ``RTOL`` relative plus
an absolute floor of ``ATOL`` (scaled down with the reference's largest logit when
that is below one: torchvision's AlexNet initialisation gives logits of 0.03), and
the reference must first be *conditioned* (:func:`condition_batchnorm`) so that
its logits stay of order one -- which :func:`assert_logits_close` checks before it
compares anything, together with logits large enough for the check to mean
something (a model that outputs zeros must fail).
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-4
ATOL = 1e-4  # float32 rounding of logits of order one through tens of layers
# Conditioned references give logits of a few units; far beyond this the comparison
# is a float32 rounding lottery and a relative tolerance no longer says much.
MAX_REFERENCE_LOGIT = 100.0
MIN_REFERENCE_LOGIT = 1e-2


def calibration_images(size, batch=4, seed=7):
    """A standard-normal NHWC batch, distinct from the images the tests compare on."""
    return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype("float32")


def condition_batchnorm(model, images_nhwc, seed=1):
    """Make a torch reference's BatchNorm realistic, in place; returns the model in eval mode.

    Scales uniform in [0.1, 0.4] (biases are kept), running statistics estimated on
    ``images_nhwc`` (one train-mode forward, cumulative average): all non-trivial,
    and the logits stay of a few units, where float32 rounding is ~1e-6. A model
    without BatchNorm is returned unchanged (in eval mode).
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in norms:
            norm.weight.copy_(torch.rand(norm.num_features, generator=gen) * 0.3 + 0.1)
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration batch
        x = np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))
        model.train()(torch.from_numpy(x))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def assert_logits_close(got, expected, rtol=RTOL, atol=ATOL):
    """Every logit within ``atol * min(1, max|expected|) + rtol * |expected|``.

    The reference must be conditioned: its largest logit between
    ``MIN_REFERENCE_LOGIT`` and ``MAX_REFERENCE_LOGIT``.
    """
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"shape {got.shape} != reference {expected.shape}"
    scale = float(np.max(np.abs(expected)))
    assert np.isfinite(scale) and scale <= MAX_REFERENCE_LOGIT, (
        f"reference logits reach {scale:.3g}: condition the reference "
        "(parity_tolerance.condition_batchnorm) so that the tolerance stays meaningful"
    )
    assert scale >= MIN_REFERENCE_LOGIT, (
        f"reference logits are all below {MIN_REFERENCE_LOGIT} (largest {scale:.3g}): "
        "a model that outputs zeros would pass; use inputs or weights that give larger logits"
    )
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * min(1.0, scale))
