"""rduflow's dataflow IR: typed values with symbolic shapes, ops, regions, modules.

The public API is re-exported here; see docs/architecture.md for where each concept lives.
"""

from .attributes import AttrKind, AttrSpec, Dense, SymbolRef
from .builder import Builder
from .compare import graph_diff, module_diff
from .core import Graph, IRError, Module, Operation, Value
from .dims import Dim, DimError
from .errors import RduflowError
from .cost import graph_cost, op_cost
from .dtypes import DType
from .interpreter import InterpreterError, run
from .opdef import Cost, OpDef, Trait, TypeInferenceError, all_opdefs, get_opdef, register
from .parser import ParseError, parse_dim, parse_file, parse_module
from .printer import print_graph, print_module
from .specialize import specialize
from .types import TensorType
from .verifier import VerifyError, verify_module
from .weights import ExternalFile, InMemory, NpzEntry, OnnxInitializer, ShapeOnly, Weight, WeightError

__all__ = [
    "RduflowError", "graph_cost", "op_cost", "AttrKind", "AttrSpec", "Builder", "Cost", "Dense", "Dim", "DimError", "DType", "ExternalFile",
    "Graph", "IRError", "InMemory", "InterpreterError", "Module", "NpzEntry", "OnnxInitializer",
    "OpDef", "Operation", "ParseError", "ShapeOnly", "SymbolRef", "TensorType", "Trait", "TypeInferenceError",
    "Value", "VerifyError", "Weight", "WeightError", "all_opdefs", "get_opdef", "parse_dim",
    "parse_file", "parse_module", "print_graph", "print_module", "register", "run", "verify_module",
    "graph_diff", "module_diff", "specialize",
]
