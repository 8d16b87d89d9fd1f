"""ProjectVoice server: app factory, settings, errors, authentication and command line."""
