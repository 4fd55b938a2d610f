"""Which code of model_builder.py a model runs: what an exported bundle records, so that
`predict` never loads weights into code that changed since (see `export.model_from_bundle`).

Python's own parser and symbol tables (`ast`, `symtable`) tell which top-level statements a
model's class uses, directly or through one another, apart from the local names of its methods.
"""

import ast
import hashlib
import inspect
import io
import symtable
from collections.abc import Iterator

from pytorch_workflow.model_builder import model_class


def model_source(name: str) -> str:
    """The sha256 of the model's code in model_builder.py: its class, its base classes written
    there, and every statement of the file that they use (its functions, classes and values),
    directly or through one another. Imports are left out: their code is torch's, whose release
    the card records, or another module's. What reaches a name only through a call
    (`TABLE.update(...)`, `setattr`) or a string (`globals()[...]`) is not followed."""
    cls = model_class(name)
    own = [c for c in cls.__mro__ if c.__module__ == cls.__module__]
    file = inspect.getsource(inspect.getmodule(cls))
    code = [*map(inspect.getsource, own), *code_used_by(file, {c.__name__ for c in own})]
    return hashlib.sha256("".join(code).encode()).hexdigest()


def code_used_by(file: str, classes: set[str]) -> list[str]:
    """The texts of the top-level statements of `file` (a module's source) that the classes
    defined there under these names use, directly or through one another, sorted: moving one
    in the file changes nothing. The classes' own definitions and the imports are left out."""
    lines = io.StringIO(file).readlines()  # at "\n" only, as ast counts lines (not at "\f")
    texts = {
        statement: "".join(lines[_first_line(statement) - 1 : statement.end_lineno])
        for statement in ast.parse(file).body
        if not isinstance(statement, ast.Import | ast.ImportFrom)
    }
    binding: dict[str, list[ast.stmt]] = {}
    reads: dict[ast.stmt, set[str]] = {}
    for statement, text in texts.items():
        # One that shares its first line with another (`X = (1,\n 2); Y = 3`): its own columns.
        alone = text if statement.col_offset == 0 else ast.get_source_segment(file, statement)
        bound, reads[statement] = _names_of(statement, alone or text)
        for name in bound:
            binding.setdefault(name, []).append(statement)
    # The classes, and whatever else binds or changes their names (`Model.forward = f`).
    used = {statement for name in classes for statement in binding.get(name, [])}
    waiting = list(used)
    while waiting:
        for statement in (b for name in reads[waiting.pop()] for b in binding.get(name, [])):
            if statement not in used:
                used.add(statement)
                waiting.append(statement)
    definitions = {s for s in used if isinstance(s, ast.ClassDef) and s.name in classes}
    return sorted(texts[statement] for statement in used - definitions)


def _first_line(statement: ast.stmt) -> int:
    """A statement's first line: its first decorator's, where it has one."""
    decorators = getattr(statement, "decorator_list", [])
    return min([statement.lineno, *(decorator.lineno for decorator in decorators)])


def _names_of(statement: ast.stmt, text: str) -> tuple[set[str], set[str]]:
    """The module's names that a top-level statement binds (or changes: `M.forward = f`,
    `TABLE[key] = f`, a function's `global`), and the ones it reads, in the functions and
    classes it defines too, not their own local names (Python's symbol tables tell them apart)."""
    table = symtable.symtable(text, "<statement>", "exec")
    symbols = table.get_symbols()
    bound = {s.get_name() for s in symbols if s.is_assigned() or s.is_imported()}
    reads = {s.get_name() for s in symbols if s.is_referenced()}
    scopes = table.get_children()
    while scopes:
        scope = scopes.pop()
        for symbol in scope.get_symbols():
            if symbol.is_global() and symbol.is_referenced():
                reads.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                bound.add(symbol.get_name())
        scopes += scope.get_children()
    stored, in_comprehensions = set(), set()
    for node in _run_on_import(statement):
        if isinstance(node, ast.comprehension):
            in_comprehensions |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            stored.add(node.id)
        elif isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(node.ctx, ast.Load):
            while isinstance(node, ast.Attribute | ast.Subscript):
                node = node.value
            if isinstance(node, ast.Name):
                bound.add(node.id)
    # Since Python 3.12 a comprehension's variable is the module's own (PEP 709): left out, so
    # that every version reads a file alike.
    only_in_comprehensions = in_comprehensions - stored - {getattr(statement, "name", "")}
    return bound - only_in_comprehensions, reads - only_in_comprehensions


def _run_on_import(statement: ast.stmt) -> Iterator[ast.AST]:
    """The nodes of a top-level statement that run when the module is imported: of a function
    or a class, its decorators, defaults and bases, not its body."""
    waiting: list[ast.AST] = [statement]
    while waiting:
        node = waiting.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            waiting += [*getattr(node, "decorator_list", []), *arguments.defaults]
            waiting += [default for default in arguments.kw_defaults if default is not None]
        elif isinstance(node, ast.ClassDef):
            waiting += [*node.decorator_list, *node.bases, *node.keywords]
        else:
            waiting += ast.iter_child_nodes(node)
