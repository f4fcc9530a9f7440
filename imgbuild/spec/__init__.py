"""Spec: load, validate and expand a project's YAML input into frozen objects.

load (files → Project), schema (JSON Schema checks), expand (Project → assets), render (prompts).
"""
