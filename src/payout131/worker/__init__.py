"""The payout worker: claims the payouts' due background steps and runs them.

``claims`` (leasing due steps, ``FOR UPDATE SKIP LOCKED``, and the rail reference an
``execute`` step is sent under), ``rail_steps`` (what the rail is asked, and exactly once
towards it), ``runner`` (the loop, and the use cases each step runs).
"""
