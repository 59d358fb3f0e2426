"""The execution side of Pipelines UI: spec, graph, fingerprint, worker, executor, step context.

Nothing in this package imports Django: a compute worker on another machine needs this package,
the broker URL and the server URL, and nothing else.
"""

__version__ = "0.1.0"
