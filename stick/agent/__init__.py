"""What runs on each laptop from the boot stick."""
