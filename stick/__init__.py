"""The boot stick: its builder runs on the admin's machine, its agent on each laptop."""
