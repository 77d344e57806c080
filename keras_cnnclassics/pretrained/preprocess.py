"""The eval preprocessing a published weight tag was measured with.

torchvision's ``ImageClassification`` transform and timm's eval transform do the same
three steps with per-tag numbers: resize the shorter side to ``resize`` (torchvision's
V2 weights: 232, Inception v3: 342; timm: ``floor(size / crop_pct)``), centre-crop
``crop`` x ``crop``, then ``(x / 255 - mean) / std``. :class:`Preprocessing` does them
with ``keras.ops.image.resize`` (antialiased, the tag's interpolation) on any backend.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Preprocessing"]


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side, centre-crop, normalise (see the module docstring).

    Call it on one image ``(H, W, 3)`` or a batch ``(N, H, W, 3)`` of RGB values in
    [0, 255] (uint8 or float, channels last, as decoders return them); it returns a
    float32 numpy batch ``(N, crop, crop, 3)`` in the configured image data format,
    ready for ``model.predict``.
    """

    resize: int
    crop: int
    interpolation: str
    mean: tuple
    std: tuple

    @classmethod
    def from_entry(cls, entry):
        """From a published tag's ``preprocessing`` entry of the weights table."""
        p = entry["preprocessing"]
        return cls(int(p["resize"]), int(p["crop"]), p["interpolation"], tuple(p["mean"]), tuple(p["std"]))

    def resized_size(self, height, width):
        """``(h, w)`` with the shorter side ``resize``; the longer one truncated, as torchvision's."""
        short, long = sorted((height, width))
        new_long = int(self.resize * long / short)
        return (self.resize, new_long) if height <= width else (new_long, self.resize)

    def __call__(self, images):
        import keras

        x = np.asarray(images)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != len(self.mean):
            raise ValueError(
                f"preprocessing expects RGB images (H, W, {len(self.mean)}) or (N, H, W, {len(self.mean)}), "
                f"channels last; got shape {np.shape(images)}."
            )
        size = self.resized_size(*x.shape[1:3])
        resized = keras.ops.image.resize(x.astype("float32"), size, interpolation=self.interpolation,
                                         antialias=True, data_format="channels_last")
        resized = keras.ops.convert_to_numpy(resized)
        if x.dtype == np.uint8:  # decoders give uint8; torchvision resizes those as uint8 too
            resized = np.clip(np.rint(resized), 0, 255)
        top = int(round((size[0] - self.crop) / 2.0))
        left = int(round((size[1] - self.crop) / 2.0))
        crop = resized[:, top : top + self.crop, left : left + self.crop]
        out = ((crop / 255.0 - np.asarray(self.mean)) / np.asarray(self.std)).astype("float32")
        return out if keras.config.image_data_format() == "channels_last" else out.transpose(0, 3, 1, 2)
