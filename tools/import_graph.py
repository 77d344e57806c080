"""Print the package's import graph summary: files, lines, cycles, longest chain.

    python tools/import_graph.py [PACKAGE_DIR]

Reads the sources with ``ast`` (nothing is imported). An import inside a function
body is *lazy*: it runs when the function is called, not when the module is
imported. Imports under ``if TYPE_CHECKING:`` are ignored. Importing
``pkg.sub.mod`` is counted as an edge to ``pkg.sub.mod`` only (not to the parent
packages' ``__init__``, which Python also runs), so the graph shows which module
needs which.

Printed: number of files, lines in and outside ``models/``, the import cycles
(strongly connected components) with all imports and with top-level imports only,
and the longest chain of top-level imports.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import sys


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    """``keras_cnnclassics/models/vgg.py`` -> ``keras_cnnclassics.models.vgg``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Yield ``(import node, lazy)`` for every import, skipping TYPE_CHECKING blocks."""

    def walk(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from walk(child, inner)

    yield from walk(tree, False)


def _targets(node, current: str, is_package: bool, modules: set[str]):
    """Package modules named by one import statement."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = node.module or ""
    if node.level:
        anchor = current.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:
            found.append(sub)
        elif base in modules:
            found.append(base)
    return found


def build_graph(root: pathlib.Path):
    """``(lines per module, {module: {target: lazy}}, {module: path})``."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(paths)
    lines, edges = {}, {}
    for name, path in paths.items():
        source = path.read_text(encoding="utf-8")
        lines[name] = source.count("\n")
        edges[name] = {}
        tree = ast.parse(source, filename=str(path))
        for node, lazy in _imports(tree):
            for target in _targets(node, name, path.name == "__init__.py", modules):
                if target != name:
                    # a top-level import of a module wins over a lazy one
                    edges[name][target] = edges[name].get(target, True) and lazy
    return lines, edges, paths


def strongly_connected(nodes, succ):
    """Tarjan's algorithm, iterative; components of more than one module."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(start):
        work = [(start, iter(sorted(succ[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(succ[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return comps


def longest_chain(nodes, succ):
    """Longest import chain, counting each cycle (component) as one step."""
    comp_of = {n: n for n in nodes}
    for comp in strongly_connected(nodes, succ):
        for member in comp:
            comp_of[member] = "{" + ", ".join(comp) + "}"
    dag = {c: set() for c in comp_of.values()}
    for node in nodes:
        for target in succ[node]:
            if comp_of[node] != comp_of[target]:
                dag[comp_of[node]].add(comp_of[target])
    best = {}

    def chain(c):
        if c not in best:
            tails = [chain(t) for t in sorted(dag[c])]
            best[c] = [c] + max(tails, key=len, default=[])
        return best[c]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(dag) + 100))
    return max((chain(c) for c in sorted(dag)), key=len, default=[])


def short(name: str, package: str) -> str:
    return name[len(package) + 1:] if name.startswith(package + ".") else name


def report(root: pathlib.Path) -> str:
    package = root.name
    lines, edges, _ = build_graph(root)
    models = f"{package}.models"
    in_models = sum(n for m, n in lines.items() if m == models or m.startswith(models + "."))
    total = sum(lines.values())
    all_succ = {m: set(t) for m, t in edges.items()}
    top_succ = {m: {t for t, lazy in ts.items() if not lazy} for m, ts in edges.items()}
    lazy = sum(lazy for ts in edges.values() for lazy in ts.values())
    out = [
        f"package {package}: {len(lines)} files, {total} lines, "
        f"{total - in_models} outside models/ ({100 * (total - in_models) / total:.0f} %)",
        f"imports between package modules: {sum(map(len, edges.values()))} ({lazy} lazy, inside functions)",
    ]
    for label, succ in (("all imports", all_succ), ("top-level imports", top_succ)):
        comps = strongly_connected(lines, succ)
        out.append(f"cycles ({label}): {len(comps)}")
        for comp in comps:
            out.append(f"  {len(comp)} modules: " + ", ".join(short(m, package) for m in comp))
    chain = longest_chain(lines, top_succ)
    out.append(f"longest chain of top-level imports: {len(chain)} steps")
    out.append("  " + " -> ".join(short(m, package) for m in chain))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = pathlib.Path(__file__).resolve().parent.parent / "keras_cnnclassics"
    parser.add_argument("package", nargs="?", type=pathlib.Path, default=default)
    args = parser.parse_args(argv)
    if not (args.package / "__init__.py").is_file():
        parser.error(f"{args.package} is not a package directory (no __init__.py); pass the package folder.")
    print(report(args.package.resolve()))


if __name__ == "__main__":
    main()
