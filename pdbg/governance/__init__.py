"""governance layer: who may do what, for which incident, for how long.

* ``init``       creating a workspace; the ``gov_*`` tables in state.sqlite
* ``principals`` users, roles, hashed tokens, and the authorization table (actor + action + resource)
* ``cases``      incidents and their detected/acknowledged/contained/resolved milestones (UTC)
* ``access``     requests, approvals, grants, break-glass, revocation, ``active_grant``
* ``reviews``    review items for break-glass use, closed by someone else
* ``retention``  per-dataset purge with legal hold and a receipt without content

Submodules are imported explicitly (``from pdbg.governance import access``) so that
``import pdbg`` stays fast.
"""
