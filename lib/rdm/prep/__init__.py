"""Readers that turn raw datasets into rdm sets (see :mod:`rdm.prep.api`)."""
