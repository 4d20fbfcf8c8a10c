"""The shipped OpenAPI document is well-formed YAML with no key given twice.

Plain YAML loaders keep the last of two equal keys silently, so a path or a
response written twice would hide one of them from the fuzz suite and the docs.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import yaml


class StrictLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def test_openapi_document_has_no_duplicate_keys() -> None:
    text = files("oauth_sessions").joinpath("openapi.yaml").read_text()
    document = yaml.load(text, Loader=StrictLoader)
    assert document["openapi"].startswith("3.1")
    assert "/oauth/logout" in document["paths"]


def test_the_strict_loader_does_reject_a_duplicate() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        yaml.load("a: 1\na: 2\n", Loader=StrictLoader)
