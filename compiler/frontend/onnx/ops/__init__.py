"""The converters, one module per operator family; importing registers them."""

from . import attention, elementwise, nn, quant, shape  # noqa: F401
