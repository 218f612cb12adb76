"""QuestFoundry LABEL ``NAME`` on LIBRARY_DIST.

The backend lives in :mod:`questfoundry_KIND_NAME.backend`, which imports LIBRARY_DIST; importing
this package does not.
"""
