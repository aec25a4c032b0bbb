"""Heads on frozen features: one encoder per modality, and attention over modalities for fusion.

Every model kind is the same module with a different modality list, so the unimodal models and
the fusion model differ only in what they see:

- each modality has an encoder (standardise -> Linear -> GELU -> Dropout) and a learned
  *missing* vector that stands in where the modality is absent (a video has no readable image, a
  post may have no caption). A unimodal model thus predicts the training mean-ish for rows it
  cannot see, and every model is scored on the same test rows.
- fusion scores each available modality (additive attention), masks the missing ones, and takes
  the softmax-weighted sum, so a missing modality is ignored rather than imputed. During training
  available modalities are dropped at random (``modality_dropout``) so the model does not lean on
  one it may not have at test time. The mean attention weights are reported per modality.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .config import MODEL_MODALITIES, modalities_of  # noqa: F401  (one table, torch-free)

class ModalityEncoder(nn.Module):
    """Standardise -> Linear -> GELU -> Dropout (``hidden`` 0: standardise only, for a linear head)."""

    def __init__(self, d_in: int, hidden: int, dropout: float):
        super().__init__()
        self.register_buffer("in_mean", torch.zeros(d_in))
        self.register_buffer("in_std", torch.ones(d_in))
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout)) if hidden else nn.Identity()
        self.missing = nn.Parameter(torch.zeros(hidden or d_in))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        h = self.net((x - self.in_mean) / self.in_std)
        return torch.where(present[:, None], h, self.missing.expand_as(h))


class AffectHead(nn.Module):
    """Unimodal (one modality) or attention-fusion model; ``out_dim`` 1 (regression) or 2 (classes).

    ``hidden`` 0 makes a linear model (logistic regression for classes): the standardised
    modalities side by side, dropout, one linear layer (``fusion`` is then ignored).
    """

    def __init__(self, dims: Mapping[str, int], hidden: int, dropout: float, out_dim: int, fusion: bool,
                 modality_dropout: float = 0.0):
        super().__init__()
        self.names = list(dims)
        self.linear = hidden == 0
        self.fusion = fusion and not self.linear
        self.modality_dropout = modality_dropout
        if not self.fusion and not self.linear and len(self.names) != 1:
            raise ValueError("a unimodal head takes exactly one modality")
        self.enc = nn.ModuleDict({m: ModalityEncoder(d, hidden, dropout) for m, d in dims.items()})
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        if self.linear:
            self.score = None
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(dims.values()), out_dim))
            return
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False)) if fusion else None
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, out_dim))

    def forward(self, x: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        hs = [self.enc[m](x[m], present[m]) for m in self.names]
        if self.linear:
            return self.head(torch.cat(hs, dim=-1)), None
        if not self.fusion:
            return self.head(hs[0]), None
        h = torch.stack(hs, dim=1)  # B x M x H
        avail = torch.stack([present[m] for m in self.names], dim=1)
        if self.training and self.modality_dropout > 0:
            drop = (torch.rand(avail.shape, device=avail.device) < self.modality_dropout) & avail
            kept = avail & ~drop
            avail = torch.where(kept.any(dim=1, keepdim=True), kept, avail)
        avail = torch.where(avail.any(dim=1, keepdim=True), avail, torch.ones_like(avail))  # nothing seen: use the missing vectors
        s = self.score(h).squeeze(-1).masked_fill(~avail, float("-inf"))
        w = torch.softmax(s, dim=1)
        return self.head((w.unsqueeze(-1) * h).sum(dim=1)), w
