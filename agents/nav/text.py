"""Word tokens for instructions: a lower-cased word/punctuation split and a vocabulary."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

PAD, UNKNOWN = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9']+|[.,]")


def tokenize(text: str) -> list[str]:
    """``"Leave the bedroom, turn left."`` → ``["leave", "the", "bedroom", ",", "turn", "left", "."]``."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Token ↔ id; id 0 is padding, id 1 stands for words never seen in training."""

    def __init__(self, tokens: list[str]):
        self.tokens = [PAD, UNKNOWN] + [t for t in tokens if t not in (PAD, UNKNOWN)]
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts, min_count: int = 1) -> "Vocabulary":
        counts = Counter(token for text in texts for token in tokenize(text))
        return cls(sorted(token for token, count in counts.items() if count >= min_count))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, length: int) -> np.ndarray:
        """(length,) int32 ids, truncated or zero-padded."""
        ids = [self.index.get(token, 1) for token in tokenize(text)][:length]
        return np.array(ids + [0] * (length - len(ids)), np.int32)
