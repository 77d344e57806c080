"""What an export reports: :class:`ExportReport` (printed as a one-row table) and :class:`ExportError`."""

from __future__ import annotations

import dataclasses

from keras_cnnclassics.export.options import INPUT_NAME


class ExportError(ValueError):
    """An export that failed: its verification (``report`` says by how much) or its writer."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class ExportReport:
    """What an export wrote and how well the file reproduces the Keras model.

    ``max_abs_diff`` is over every output value of the verification images,
    ``output_range`` the range (max - min) of the Keras outputs, ``top1_agreement``
    the fraction of images whose arg-max class is the same, ``latency_ms`` the
    mean time per image in the runtime (all threads, batch ``batch``),
    ``writer_reason`` why a worker process wrote the file (None when this one did).
    ``accuracy`` holds the Keras and file accuracies where the verification
    images have labels that match the model's classes (digits, 10 classes).
    """

    output: str
    format: str
    precision: str
    size_bytes: int
    max_abs_diff: float
    output_range: float
    top1_agreement: float
    latency_ms: float
    samples: int
    verified_on: str
    limit: str
    passed: bool
    writer: str
    input_shape: tuple
    input_dtype: str
    batch: object
    input_quantization: tuple | None = None
    accuracy: dict | None = None
    notes: list = dataclasses.field(default_factory=list)
    writer_reason: str | None = None

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "size_mb": self.size_mb}

    def table(self, details=True) -> str:
        """The one-row verification table (plus notes) printed after an export.

        ``details``: also say why a worker process wrote the file.
        """
        head = ("format", "precision", "size", "max |diff|", "top-1 agreement",
                "latency/image", "limit", "result")
        row = (
            self.format,
            self.precision,
            f"{self.size_mb:.2f} MB",
            f"{self.max_abs_diff:.2e}",
            f"{100 * self.top1_agreement:.1f} %",
            f"{self.latency_ms:.2f} ms",
            self.limit,
            "ok" if self.passed else "FAILED",
        )
        widths = [max(len(h), len(c)) for h, c in zip(head, row)]
        lines = [
            "  ".join(h.ljust(w) for h, w in zip(head, widths)),
            "  ".join("-" * w for w in widths),
            "  ".join(c.ljust(w) for c, w in zip(row, widths)),
        ]
        io = f"input {INPUT_NAME} {self.input_dtype} {tuple(self.input_shape)} (NHWC)"
        if self.input_quantization:
            scale, zero = self.input_quantization
            io += f", quantized q = x / {scale:.6g} + {zero}"
        lines.append(f"{io}; verified on {self.samples} {self.verified_on} images")
        if self.accuracy:
            lines.append(
                "accuracy on their labels: keras {keras:.1%}, file {file:.1%}".format(**self.accuracy)
            )
        why = f": {self.writer_reason}" if details and self.writer_reason else ""
        lines.append(f"written by: {self.writer}{why}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
