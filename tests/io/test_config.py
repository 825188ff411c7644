"""Defaults live in the config schema (issue #17): config.yaml repeats them for the reader and
must agree; the nipype interfaces and steps take every configurable value explicitly; the
science layer's documented constants (CbfOptions, reho_map, alff) equal the schema's."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from rviflow.io.config import SCHEMA, schema_defaults
from conftest import REPO


def _pairs(shipped, defaults, path=""):
    """(key path, shipped value, schema default) for every key config.yaml sets."""
    for k, v in shipped.items():  # (keys without a default, e.g. bids_dir, are the user's to set)
        if isinstance(v, dict) and isinstance(defaults.get(k), dict):
            yield from _pairs(v, defaults[k], f"{path}{k}.")
        elif k in defaults:
            yield f"{path}{k}", v, defaults[k]


def test_config_yaml_repeats_the_schema_defaults():
    shipped = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    pairs = list(_pairs(shipped, schema_defaults()))
    assert len(pairs) > 60  # the check covers the file, not a corner of it
    bad = [(k, v, d) for k, v, d in pairs if v != d and not (v in (None, "") and d in (None, ""))]
    assert not bad, bad


def _config_traits(interface, section):
    keys = set(schema_defaults(section))
    spec = interface().inputs
    return {name: spec.trait(name) for name in spec.copyable_trait_names() if name in keys}


@pytest.mark.parametrize("interface, section", [("DenoiseBold", "denoise"), ("ComputeReHo", "reho"),
                                                ("QuantifyCBF", "cbf")])
def test_interfaces_take_config_values_without_defaults_of_their_own(interface, section):
    from rviflow.pipeline import interfaces

    traits = _config_traits(getattr(interfaces, interface), section)
    assert traits, f"{interface} has no input named like a {section} key"
    with_default = [n for n, t in traits.items() if t.usedefault or not t.mandatory]
    assert not with_default, f"{interface}: {with_default} carry a default of their own"


def test_science_constants_equal_the_schema_defaults():
    from rviflow.measures.alff import compute_alff
    from rviflow.measures.cbf.quantify import CbfOptions, cbf_options
    from rviflow.measures.reho import reho_map

    own = {f.name: f.default for f in dataclasses.fields(CbfOptions)}
    from_schema = cbf_options(schema_defaults("cbf"))
    assert {k: (tuple(v) if isinstance(v, list) else v) for k, v in own.items()} == from_schema
    reho = schema_defaults("reho")
    sig = inspect.signature(reho_map).parameters
    assert sig["neighbourhood"].default == reho["neighbourhood"]
    assert sig["tie_correction"].default == reho["tie_correction"]
    assert list(inspect.signature(compute_alff).parameters["band"].default) == list(schema_defaults("alff")["band"])
