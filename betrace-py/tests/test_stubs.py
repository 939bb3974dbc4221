"""The installed package ships `py.typed` and stubs that declare exactly what the native
module and the package export."""

from __future__ import annotations

import ast
import importlib.resources
from pathlib import Path

import betrace
import betrace._native as native


def stub(name: str) -> ast.Module:
    return ast.parse((Path(betrace.__file__).parent / name).read_text(encoding="utf-8"))


def public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def test_the_package_is_typed():
    assert importlib.resources.files("betrace").joinpath("py.typed").is_file()


def test_native_stub_declares_every_class_member_and_function():
    tree = stub("_native.pyi")
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(classes) | functions == public(dir(native))
    for name, node in classes.items():
        declared = public(n.name for n in node.body if isinstance(n, ast.FunctionDef))
        assert declared == public(dir(getattr(native, name))), name


def test_package_stub_exports_what_the_package_exports():
    tree = stub("__init__.pyi")
    [all_] = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"]
    assert ast.literal_eval(all_.value) == betrace.__all__
    reexported = {a.asname for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names if a.asname}
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert reexported | defined == set(betrace.__all__)
