"""The learned router's training parameters (ridge penalties, column scales, cut-offs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Params:
    ridge: float = 100.0  # L2 penalty
    gram_weight: float = 0.6  # scale of character-gram columns relative to word pairs
    dense_weight: float = 1.0  # scale of standardized dense columns
    form_sparse: float = 0.5  # squared scale of each form's own copy of the pair and gram columns
    form_dense: float = 2.0  # squared scale of each form's own copy of the dense columns
    min_df_bigrams: int = 2
    min_df_grams: int = 3
    intercept_scale: float = 10.0
    prior_weight: float = 0.3  # the heuristic's logit, added as a fixed prior (chosen by grouped CV)
    transfer_k: float = 10.0  # the transfer term's blend per form is k / (k + the form's training requests); 0: off
    transfer_ridge: float = 1.0  # L2 penalty of the transfer head (``transfer``)
    digits: int = 5  # significant digits kept in the artifact

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}


DEFAULTS = Params()  # frozen: safe as a default argument
