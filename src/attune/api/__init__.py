"""Layer 5, deliver: the REST API (FastAPI), built by :func:`attune.api.app.create_app`."""
