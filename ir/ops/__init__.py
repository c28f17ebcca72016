"""Built-in operations, one module per family; importing registers them."""

from . import elementwise, indexing, linalg, nn, placed, quant, reduce, shape, structure  # noqa: F401
