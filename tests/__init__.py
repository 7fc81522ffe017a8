"""The test suite: a package, so the helper modules beside the tests import relatively (``from .checkpoint_factories import ...``)."""
