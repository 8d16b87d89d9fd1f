"""Payload types generated from openapi/ and asyncapi/ by `make generate` (scripts/generate_models.py). Do not edit."""
