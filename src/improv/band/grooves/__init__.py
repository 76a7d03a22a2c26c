"""Drum grooves, one TOML file per style (see README.md in this folder)."""
