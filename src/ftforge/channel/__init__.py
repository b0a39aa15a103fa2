"""The dedicated channel: publish and index."""
