"""How a model's torchvision/timm checkpoint differs from the generic per-layer copy.

Layer names follow the torch module paths ("." written "_"), so most checkpoints
convert layer by layer without any rule (:mod:`keras_cnnclassics.convert`). What
differs is declared on the model's registry entry (``torch_mapping=``) as a
:class:`TorchMapping`, or as a function ``(options) -> TorchMapping`` when it
depends on the options the model is built with. This module needs neither Keras
nor torch, so model families can declare their mapping without importing the
conversion tool.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

__all__ = ["TorchMapping", "aux_head_mapping"]


@dataclasses.dataclass(frozen=True)
class TorchMapping:
    """How a family's torch checkpoints differ from the generic per-layer rule.

    Attributes:
        rename: ``(regex, replacement)`` pairs applied in order to every source key
            (``re.sub``), e.g. the legacy ``denselayer1.norm.1.weight`` keys of
            torchvision's published DenseNet files -> ``denselayer1.norm1.weight``.
        drop: regexes of source keys the Keras model deliberately has no layer for,
            e.g. ``r"^aux[12]\\."`` (GoogLeNet's auxiliary classifiers).
        reference_kwargs: keyword arguments of the torchvision/timm constructor
            that builds the same network as the Keras options (``aux_logits``,
            ``transform_input``); used to verify a conversion.
    """

    rename: tuple = ()
    drop: tuple = ()
    reference_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def apply(self, state_dict):
        """``(renamed state dict without the dropped keys, sorted dropped keys)``."""
        renamed, dropped = {}, []
        for key, value in state_dict.items():
            for pattern, replacement in self.rename:
                key = re.sub(pattern, replacement, key)
            if any(re.search(pattern, key) for pattern in self.drop):
                dropped.append(key)
                continue
            if key in renamed:
                raise ValueError(f"Two checkpoint tensors map to the same name {key!r}.")
            renamed[key] = value
        return renamed, sorted(dropped)


def aux_head_mapping(aux_keys):
    """The mapping of a torchvision network with auxiliary classifiers and
    ``transform_input`` (GoogLeNet, Inception v3), as a function of the options.

    Published checkpoints hold the auxiliary heads (regex ``aux_keys``); a Keras
    model built without them (``aux_logits=False``, the default) leaves them out on
    purpose. The verifying torchvision model gets the same ``aux_logits`` and
    ``transform_input`` as the Keras options.
    """

    def mapping(options):
        aux = bool(options.get("aux_logits", False))
        return TorchMapping(
            drop=() if aux else (aux_keys,),
            reference_kwargs={
                "aux_logits": aux,
                "transform_input": bool(options.get("transform_input", False)),
                "init_weights": False,
            },
        )

    return mapping
