"""The receiver daemon (``mcast-receive``) — arrives with the real-daemon issue."""
