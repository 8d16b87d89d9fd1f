"""Payload models generated from openapi/ and asyncapi/ by `make generate`. Do not edit."""
