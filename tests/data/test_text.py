import numpy as np

from grec.data.text import EMBEDDING_DIM, SentenceEncoder, TextEmbeddingStore, text_hash


class CountingEncoder(SentenceEncoder):
    """The real encoder, counting the texts it is asked to encode."""

    def __init__(self):
        super().__init__()
        self.encoded: list[str] = []

    def encode(self, texts, progress=False):
        self.encoded += list(texts)
        return super().encode(texts, progress)


def test_minilm_vectors_are_normalised_and_semantic(texts):
    v = texts.lookup(["apple iphone 15 pro", "iphone 15 pro max", "phone case with drop protection", ""])
    assert v.shape == (4, EMBEDDING_DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert not v[3].any()  # no search: zeros
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # the same phone is nearer than an accessory


def test_each_distinct_text_is_encoded_once_and_persisted(tmp_path):
    path = tmp_path / "vectors.parquet"
    encoder = CountingEncoder()
    store = TextEmbeddingStore(path, encoder)
    first = store.lookup(["samsung galaxy", "pixel 9", "samsung galaxy"])
    assert sorted(encoder.encoded) == ["pixel 9", "samsung galaxy"]
    again = store.lookup(["pixel 9", "samsung galaxy", "moto g"])
    assert encoder.encoded[2:] == ["moto g"]
    assert np.array_equal(again[:2], first[[1, 0]])
    reloaded = TextEmbeddingStore(path, CountingEncoder())
    assert len(reloaded) == 3
    assert np.array_equal(reloaded.lookup(["moto g", "pixel 9"]), again[[2, 0]])
    assert reloaded.encoder.encoded == []


def test_text_hash_is_stable():
    assert text_hash("iphone") == text_hash("iphone") != text_hash("iPhone")
    assert len(text_hash("")) == 16
