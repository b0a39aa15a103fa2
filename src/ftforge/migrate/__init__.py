"""The feedstock migration bot (see issue 7)."""
