"""The ToyWorld tokenizer: a CLIP tokenizer whose every caption word is one token.

A byte-level vocabulary would spend the tiny text encoder's eight positions on letters; whole-word
tokens give "a red cube" four meaningful positions. It is a genuine `CLIPTokenizer` (BPE with the
"</w>" end-of-word mark), built offline from merges that assemble each word from its letters, so
it saves and loads like the real presets' tokenizers.
"""

from __future__ import annotations

from transformers import CLIPTokenizer

from vidmp3.toyworld.world import COLOURS, SHAPES

WORDS = ("a", *COLOURS, *SHAPES)
MAX_TOKENS = 8
"""Start, "a", colour, shape, end and padding: room to spare for a caption."""


def _merge_once(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str] | None:
    """Apply the best-ranked merge present, as BPE does; None when no merge applies."""
    pairs = [(ranks[pair], at) for at, pair in enumerate(zip(symbols, symbols[1:])) if pair in ranks]
    if not pairs:
        return None
    _, at = min(pairs)
    return symbols[:at] + [symbols[at] + symbols[at + 1]] + symbols[at + 2 :]


def _word_merges() -> tuple[list[str], list[tuple[str, str]]]:
    """Pieces and merges that BPE uses to turn each word's letters into the one token `word</w>`.

    Words are added in turn: whatever the earlier merges make of a word's letters, merges of its
    two leftmost pieces (ranked after all earlier ones) finish it. Later merges never change an
    earlier word, which is one token before they apply.
    """
    pieces: list[str] = []
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in WORDS:
        symbols = [*word[:-1], word[-1] + "</w>"]
        pieces += [symbol for symbol in symbols if symbol not in pieces]
        while len(symbols) > 1:
            merged = _merge_once(symbols, ranks)
            if merged is None:
                pair = (symbols[0], symbols[1])
                ranks[pair] = len(merges)
                merges.append(pair)
                merged = [pair[0] + pair[1], *symbols[2:]]
                pieces.append(merged[0])
            symbols = merged
    return pieces, merges


def toyworld_tokenizer() -> CLIPTokenizer:
    """CLIP tokenizer over the caption words: ids 0-8 are the words, then letters and pieces, then start and end."""
    pieces, merges = _word_merges()
    words = [word + "</w>" for word in WORDS]
    tokens = words + [piece for piece in pieces if piece not in words] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)
