"""Aligning the tokens of a source and a target prompt (Prompt-to-Prompt's mappers).

Prompt-to-Prompt maps the source's cross-attention maps onto the target's tokens:

- **replace** (word swap; prompts with the same number of tokens): target token i takes source token
  i's map: the mapper is the identity ``[K, K]`` matrix.
- **refine** (words added or removed): a global alignment of the two word sequences (Needleman-Wunsch
  with match +1, mismatch -1 and gap 0, as the authors' ``seq_aligner``); a target token aligned to a
  source token takes its map (``alphas`` 1), a new target token keeps its own (``alphas`` 0).

Prompts are word lists, one word per embedding row (``DiffusionModel.prompt_words``; ``""`` for padding).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError


def replace_mapper(source: list[str] | int, target: list[str] | int) -> Tensor:
    """The identity ``[K, K]`` mapper of a word swap; ``source`` / ``target``: word lists or token counts."""
    ks = source if isinstance(source, int) else len(source)
    kt = target if isinstance(target, int) else len(target)
    if ks != kt:
        raise ConfigError(f"p2p replace swaps words one for one: the prompts have {ks} and {kt} tokens; use --controller p2p-refine")
    return torch.eye(ks)


def refine_mapper(source: list[str], target: list[str]) -> tuple[Tensor, Tensor]:
    """``(mapper [Kt] long, alphas [Kt])``: for each target token the source token it copies (any index
    when ``alphas`` is 0: a word the source does not have). Padding rows align with padding rows."""
    ws = [w for w in source if w]
    wt = [w for w in target if w]
    # global alignment score table: gaps cost 0, a match scores 1, a mismatch -1
    rows, cols = len(ws) + 1, len(wt) + 1
    score = [[0] * cols for _ in range(rows)]
    for i in range(1, rows):
        for j in range(1, cols):
            diag = score[i - 1][j - 1] + (1 if ws[i - 1] == wt[j - 1] else -1)
            score[i][j] = max(diag, score[i - 1][j], score[i][j - 1])
    pairs: dict[int, int] = {}
    i, j = len(ws), len(wt)
    while i > 0 and j > 0:  # trace back; prefer matches
        if ws[i - 1] == wt[j - 1] and score[i][j] == score[i - 1][j - 1] + 1:
            pairs[j - 1] = i - 1
            i, j = i - 1, j - 1
        elif score[i][j] == score[i - 1][j]:
            i -= 1
        elif score[i][j] == score[i][j - 1]:
            j -= 1
        else:
            i, j = i - 1, j - 1  # a mismatch: the target word is new
    src_rows = [k for k, w in enumerate(source) if w]
    tgt_rows = [k for k, w in enumerate(target) if w]
    src_pad = [k for k, w in enumerate(source) if not w]
    mapper = torch.zeros(len(target), dtype=torch.long)
    alphas = torch.zeros(len(target))
    for tj, si in pairs.items():
        mapper[tgt_rows[tj]], alphas[tgt_rows[tj]] = src_rows[si], 1.0
    for q, k in enumerate(k for k, w in enumerate(target) if not w):  # padding takes padding, in order
        if q < len(src_pad):
            mapper[k], alphas[k] = src_pad[q], 1.0
    return mapper, alphas


def word_rows(words: list[str], chosen: list[str], what: str) -> list[int]:
    """Rows of ``words`` holding any of ``chosen``; a chosen word that is absent is a one-line error."""
    missing = [w for w in chosen if w not in words]
    if missing:
        shown = " ".join(w for w in words if w) or "(empty)"
        raise ConfigError(f"{what}: {', '.join(repr(w) for w in missing)} not in the prompt's words ({shown})")
    return [k for k, w in enumerate(words) if w in chosen]
