"""OneRec's pieces on any SID generator (Deng et al., arXiv 2502.18965): whole lists from session-trained models
and their metrics (`lists`), a reward model of sessions (`reward`), and iterative preference alignment with DPO
(`ipa`); `parts` builds the `reward` and `align` stages and the list metrics of `evaluate` from them."""
