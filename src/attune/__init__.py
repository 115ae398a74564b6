"""Attune: an open-source AI personalization engine.

Importing this package is cheap: it pulls in no model library, database driver or web
framework. Entry points are :mod:`attune.cli`, :func:`attune.api.app.create_app` and the
:class:`attune.models.base.Recommender` interface.
"""

__version__ = "0.1.0"
