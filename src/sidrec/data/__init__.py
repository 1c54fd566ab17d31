"""Data: loaders to one canonical form, filtering and chronological leave-one-out splits."""
