"""The measure registry (rviflow.measures.registry) and what is generated from it."""

from __future__ import annotations

import inspect

import pytest
import yaml

from conftest import JOB_BLOCK, REPO, run_snakemake, write_config
from rviflow.measures import registry as measures
from rviflow.pipeline.batches import STEPS
from rviflow.report.sections import MEASURE_TITLES

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())["properties"]


def test_every_spec_is_complete_and_consistent_with_the_schema():
    for name, spec in measures.REGISTRY.items():
        assert spec.name == name and spec.title and spec.methods and spec.citations
        assert spec.chain[-1] == "parcellate" and "json" in spec.outputs and "mask" in spec.outputs
        assert len(spec.resources) == 4 and spec.threads >= 1
        if spec.parcel_choices:  # the map to parcellate is chosen in config: the schema lists the same maps
            assert set(spec.parcel_choices) <= set(spec.outputs)
            section = SCHEMA.get(spec.config_section)
            if section is not None:
                assert section["properties"][spec.parcel_map]["enum"] == list(spec.parcel_choices)
        else:
            assert spec.parcel_map in spec.outputs


def test_wired_measures_steps_and_interfaces_resolve():
    for name in measures.WIRED:
        spec = measures.REGISTRY[name]
        assert spec.config_section in SCHEMA
        step = measures.resolve(spec.step)
        assert STEPS[spec.chain[-2]] is step  # batch mode runs exactly the registered step
        assert {"outputs", "participant_id", "on_error", "log"} <= set(inspect.signature(step).parameters)
        assert measures.resolve(spec.interface).__name__ in spec.interface
        assert measures.collect_rule(name) == f"collect_{name}"
    assert measures.collect_rule("thickness") is None


def test_report_titles_come_from_the_registry():
    for name, spec in measures.REGISTRY.items():
        assert MEASURE_TITLES[name] == spec.title
    assert MEASURE_TITLES["thickness"] == "cortical thickness"


@pytest.mark.workflow
def test_a_user_table_wins_over_computed_reho_and_cbf(cohort16, tmp_path):
    """cohort.tables for ReHo and CBF with BOLD and ASL present: the dry run imports both tables
    and schedules neither collect_reho nor collect_cbf (CBF's table used to be ignored)."""
    tables = {}
    for m in ("reho", "cbf"):
        tables[m] = str(tmp_path / f"{m}.tsv")
        (tmp_path / f"{m}.tsv").write_text("participant_id\tregion_a\nsub-01\t1.0\n")
    cfg = write_config(tmp_path / "config.yaml", cohort16, tmp_path / "out", cohort={"tables": tables})
    proc = run_snakemake(cfg, tmp_path, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [(m.group(1), m.group(2)) for m in JOB_BLOCK.finditer(proc.stdout + proc.stderr)]
    rules = {r for r, _ in jobs}
    imported = {body.split("measure=")[1].split()[0].strip(",") for r, body in jobs if r == "import_table"}
    assert imported == {"reho", "cbf"}
    assert not rules & {"collect_reho", "collect_cbf"}
