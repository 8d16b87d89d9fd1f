"""Socket.IO: voice signalling and live message events."""
