"""Caption tokenisation as in the CLIP4Clip family: start token + CLIP BPE, truncated, end token, zero padding, mask."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch


@lru_cache(maxsize=4)
def _bpe(name: str) -> Any:
    """open_clip's tokenizer for model `name` (offline: the BPE vocabulary ships inside the open_clip wheel)."""
    import open_clip

    tokenizer = open_clip.get_tokenizer(name)
    if not all(hasattr(tokenizer, a) for a in ("encode", "sot_token_id", "eot_token_id", "vocab_size")):
        raise ValueError(
            f"open_clip model `{name}` uses a {type(tokenizer).__name__}, not the CLIP BPE tokenizer; "
            "pick a CLIP-style model name such as ViT-B-32."
        )
    return tokenizer


class TextTokenizer:
    """Captions -> (tokens int64 [B, max_words], mask int64 [B, max_words]); the end token survives truncation."""

    def __init__(self, max_words: int, name: str = "ViT-B-32") -> None:
        if max_words < 2:
            raise ValueError(f"max_words must be >= 2 (start and end tokens), got {max_words}.")
        self.max_words = max_words
        self.name = name
        self._bpe = _bpe(name)

    @property
    def vocab_size(self) -> int:
        """Number of token ids (including the special tokens)."""
        return int(self._bpe.vocab_size)

    @property
    def sot_id(self) -> int:
        """Id of the start-of-text token."""
        return int(self._bpe.sot_token_id)

    @property
    def eot_id(self) -> int:
        """Id of the end-of-text token (CLIP text models pool at its position)."""
        return int(self._bpe.eot_token_id)

    def ids(self, caption: str) -> list[int]:
        """Token ids of one caption: start, BPE ids cut so the total with the end token is <= max_words, end."""
        return [self.sot_id, *self._bpe.encode(caption)[: self.max_words - 2], self.eot_id]

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenise a batch of captions, right-padded with 0; mask is 1 on real tokens."""
        tokens = torch.zeros(len(captions), self.max_words, dtype=torch.int64)
        mask = torch.zeros(len(captions), self.max_words, dtype=torch.int64)
        for row, caption in enumerate(captions):
            ids = self.ids(caption)
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
            mask[row, : len(ids)] = 1
        return tokens, mask
