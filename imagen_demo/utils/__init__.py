"""Helpers that know nothing of models: atomic writes, lazy package exports, Markdown tables."""
