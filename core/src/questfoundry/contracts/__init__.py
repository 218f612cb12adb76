"""The contracts: what the core and every plugin agree on, and nothing else.

:mod:`.hookspecs` (the hooks), :mod:`.protocols` (what a backend is), :mod:`.records` (the values
they trade), :mod:`.backends` (a registration and a factory's context), :mod:`.studio` (roles,
loops, steps), :mod:`.structured` (JSON Schema output), :mod:`.errors` (one family). These modules
import nothing of QuestFoundry above them; plugins reach them through :mod:`questfoundry.kit`.
"""
