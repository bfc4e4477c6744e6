"""The sender daemon (``mcastd serve``) — arrives with the real-daemon issue."""
