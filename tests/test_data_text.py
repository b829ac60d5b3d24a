"""The caption tokenizer: start/end tokens, truncation keeping the end token, zero padding and the mask."""

from __future__ import annotations

import open_clip
import pytest
import torch

from benchmark.data.text import TextTokenizer


def test_short_captions_match_open_clip_and_are_padded() -> None:
    tok = TextTokenizer(16)
    captions = ["A red square slides to the LEFT", "hi"]
    tokens, mask = tok(captions)
    assert tokens.shape == mask.shape == (2, 16) and tokens.dtype == mask.dtype == torch.int64
    assert torch.equal(tokens, open_clip.get_tokenizer("ViT-B-32")(captions, context_length=16))
    lengths = mask.sum(1)
    for row, n in enumerate(lengths.tolist()):
        assert tokens[row, 0] == tok.sot_id and tokens[row, n - 1] == tok.eot_id
        assert mask[row, :n].eq(1).all() and mask[row, n:].eq(0).all() and tokens[row, n:].eq(0).all()
    assert (tok.vocab_size, tok.eot_id) == (49408, 49407)


def test_truncation_keeps_the_end_token() -> None:
    tok = TextTokenizer(8)
    caption = "one two three four five six seven eight nine ten eleven"
    tokens, mask = tok([caption])
    assert mask.sum() == 8
    bpe = TextTokenizer(77).ids(caption)[1:-1]
    assert tokens[0].tolist() == [tok.sot_id, *bpe[:6], tok.eot_id]


def test_max_words_must_fit_the_special_tokens() -> None:
    with pytest.raises(ValueError, match="max_words"):
        TextTokenizer(1)
    tokens, mask = TextTokenizer(2)(["anything at all"])
    assert tokens[0].tolist() == [49406, 49407] and mask[0].tolist() == [1, 1]
