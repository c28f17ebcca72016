"""The converters, one module per operator family; importing registers them."""

from . import elementwise, nn, quant, shape  # noqa: F401
