"""components.docstrings: the models' field descriptions are exactly pydantic's own.

Every pydantic model defined in the project's packages is read both ways — by pydantic's
extraction (inspect + its parse of the class block) and by the one-parse-per-module reader
that importing `components` installs — and the field descriptions must be the same."""

from __future__ import annotations

import importlib
import pkgutil

from pydantic import BaseModel
from pydantic._internal import _docs_extraction, _fields

from components import docstrings

PACKAGES = ["components", "designs", "sim", "review"]


def _models() -> list[type]:
    out = []
    for name in PACKAGES:
        pkg = importlib.import_module(name)
        mods = [pkg] + [importlib.import_module(m.name) for m in pkgutil.walk_packages(pkg.__path__, name + ".")]
        for mod in mods:
            for obj in vars(mod).values():
                if (isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == mod.__name__
                        and obj.model_config.get("use_attribute_docstrings")):
                    out.append(obj)
    return out


def test_installed():
    assert _fields.extract_docstrings_from_cls is docstrings.extract


def test_same_descriptions_as_pydantic():
    models = _models()
    assert len(models) > 40  # the catalogue, the design model, the records
    described = 0
    for cls in models:
        ours = docstrings.extract(cls)
        theirs = _docs_extraction.extract_docstrings_from_cls(cls, use_inspect=True)
        assert ours == theirs, cls.__qualname__
        described += len(ours)
        for field, text in ours.items():  # and the models carry them
            f = cls.model_fields.get(field)
            if f is not None and f.description is not None and field in cls.__annotations__:
                assert f.description == text, f"{cls.__qualname__}.{field}"
    assert described > 300
