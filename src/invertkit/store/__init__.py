"""The lowest room above ``errors``: files of weights and where invertkit keeps things.

- :mod:`.home`: ``$INVERTKIT_HOME`` (default ``~/.cache/invertkit``), resolved in one place.
- :mod:`.tensorfiles`: safe reading of ``torch.save`` state dicts and strict loading into modules.
- :mod:`.digest`: sha256 fingerprints of weights (what caches and weight deltas are keyed by).
- :mod:`.statcache`: statistics of a network cached in memory and on disk, keyed by those fingerprints.

Nothing here imports a generator, a feature network or a method: every other package may use it.
"""
