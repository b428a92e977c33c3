"""Bundled YAML presets, shipped as package data (see ``stylecascade presets list``)."""
