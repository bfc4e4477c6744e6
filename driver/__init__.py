"""The trio runtime both programs share: the session loop and worker threads, UDP sockets
(multicast, GSO/GRO), the console and live view, CLI options and units, key and secret files.
It drives ``protocol`` sessions and knows nothing of what is being sent or written."""
