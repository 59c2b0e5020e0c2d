"""`voxbatch run`: the long-running watch-folder daemon."""
