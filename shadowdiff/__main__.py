"""``python -m shadowdiff``: the same command as ``shadowdiff``."""

from shadowdiff.cli import entry

# Guarded: a process that multiprocessing spawns (a Dask LocalCluster's workers) imports the
# main module again, and must not run the command a second time.
if __name__ == "__main__":
    entry()
