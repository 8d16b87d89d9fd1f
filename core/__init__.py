"""The bottom layer: settings, errors, limits, metrics and text rules; imports nothing of ours above it."""
