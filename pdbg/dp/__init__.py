"""dp layer: OpenDP mechanisms, accounting, accuracy, partition selection, quantiles, release.

Modules are imported where used (``from pdbg.dp import release``) so that ``import pdbg``
stays fast; OpenDP itself is imported lazily inside them.
"""
