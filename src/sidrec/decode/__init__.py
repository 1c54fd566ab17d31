"""Decoding: a prefix trie over valid Semantic IDs and beam search as a pure function of a step callable."""
