"""Disks as data: partition tables (GPT and MBR), the used ranges of each filesystem (by
driving partclone), and the prepared-image file format. No sockets, no trio."""
