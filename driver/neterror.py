"""The one error the network set-up raises."""


class NetworkError(Exception):
    """A socket could not be set up: one plain sentence for the user."""
