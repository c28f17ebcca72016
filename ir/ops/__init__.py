"""Built-in operations, one module per family; importing registers them."""

from . import elementwise, linalg, nn, reduce, shape, structure  # noqa: F401
