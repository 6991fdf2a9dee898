"""LiberTEM 0.16's public module paths, mapped onto libertem_gpu.

A LiberTEM script runs here after replacing ``libertem`` with ``libertem_gpu.compat`` in its
imports::

    from libertem_gpu.compat.api import Context          # was: from libertem.api import Context
    from libertem_gpu.compat.udf.sum import SumUDF       # was: from libertem.udf.sum import SumUDF

Each module re-exports our classes under LiberTEM's names, with thin adapters where LiberTEM's
signatures differ (data set constructors, ``Context.run_udf``'s extra arguments, executors).
The differences on purpose are listed in the "Coming from LiberTEM" page of the docs
(``docs/libertem.md``).
"""

__version__ = "0.16.0"
