"""Search-query text to vectors, computed once per unique text outside the model.

The model reads vectors, never raw text, so the encoder can change without touching the model.
This module's encoder is feature hashing over word unigrams, word bigrams and character trigrams
(Weinberger et al., 2009): deterministic, dependency-free and fast, and robust to the typos real
queries have. It is the offline default; a pre-trained sentence encoder plugs in behind the same
`encode(texts) -> (N, dim) float32` interface.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")


class HashingTextEncoder:
    """Signed feature hashing into `dim` buckets, L2-normalised. The empty text maps to zeros."""

    def __init__(self, dim: int = 64):
        self.dim = dim

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        grams = [f"w:{w}" for w in words] + [f"b:{a}_{b}" for a, b in zip(words, words[1:])]
        for w in words:
            padded = f"#{w}#"
            grams += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
        return grams

    def _encode_one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for gram in self._features(text):
            h = zlib.crc32(gram.encode())
            vec[h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        norm = np.linalg.norm(vec)
        return vec / norm if norm > 0 else vec

    def encode(self, texts) -> np.ndarray:
        """(N,) texts -> (N, dim) float32. Each unique text is encoded once."""
        texts = np.asarray(texts, dtype=object)
        uniques, inverse = np.unique(texts.astype(str), return_inverse=True)
        table = np.stack([self._encode_one(t) for t in uniques]) if len(uniques) else np.zeros((0, self.dim), np.float32)
        return table[inverse.reshape(-1)]
