"""The project's state beyond one store: key rules, schema versions and migrations, backups,
export and import.

Stores themselves are plugins (:class:`~questfoundry.interfaces.StateStore`; the built-in one is
:mod:`questfoundry.default_plugins.file_store`). This package works through that protocol only, so
everything here serves every store alike. Its modules import nothing heavy; import them directly.
"""
