"""Site and Report, built by hand: savings, totals, dict/JSON form and the printed table."""

import dataclasses
import json

import pytest

from tf_reorder.report import Report, Site

PAD_REASON = "sigmoid(0) != 0, so it cannot cross the zero padding 'pad'"
NOTE = "the decision for 'prelu' holds for its weights at rewrite time"


def site(**overrides):
    fields = dict(
        scope="net", activation="act", function="relu", fused=False, producer="conv",
        between=(), pool="pool", moved=True, reason="", elements_before=1000,
        elements_after=250,
    )
    fields.update(overrides)
    return Site(**fields)


MOVED = site(activation="conv1", fused=True, producer=None, between=("reshape", "crop"),
             pool="pool1", elements_before=4096, elements_after=1024)
SKIPPED = site(scope="net/block", activation="act2", function="sigmoid", pool="pool2",
               between=("pad",), moved=False, reason=PAD_REASON, elements_before=800,
               elements_after=200)
UNKNOWN_SIZE = site(activation="act3", function="tanh", pool="gmp", elements_before=None,
                    elements_after=None)
PRELU = site(activation="prelu", function="PReLU(min alpha=0.25)", pool="pool4",
             elements_before=64, elements_after=16, notes=(NOTE,))
SITES = (MOVED, SKIPPED, UNKNOWN_SIZE, PRELU)


@pytest.fixture
def report():
    return Report("net", SITES)


# -- Site ----------------------------------------------------------------------


@pytest.mark.parametrize("s, saved", [
    (MOVED, 4096 - 1024),
    (SKIPPED, 0),  # not moved: nothing saved, whatever the sizes
    (UNKNOWN_SIZE, 0),  # moved, sizes unknown
    (site(elements_before=100, elements_after=None), 0),
    (site(elements_before=None, elements_after=25), 0),
    (site(elements_before=300, elements_after=1), 299),
    (PRELU, 48),
])
def test_site_elements_saved(s, saved):
    assert s.elements_saved == saved


def test_site_to_dict():
    data = MOVED.to_dict()
    field_names = [f.name for f in dataclasses.fields(Site)]
    assert list(data) == field_names + ["elements_saved"]
    assert data["between"] == ["reshape", "crop"] and isinstance(data["between"], list)
    assert data["notes"] == [] and isinstance(data["notes"], list)
    assert data["elements_saved"] == 3072
    assert data["producer"] is None and data["fused"] is True
    for name in field_names:
        if name not in ("between", "notes"):
            assert data[name] == getattr(MOVED, name)
    assert PRELU.to_dict()["notes"] == [NOTE]


def test_site_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MOVED.moved = False


# -- Report totals -----------------------------------------------------------


def test_report_moved_and_skipped(report):
    assert report.moved == (MOVED, UNKNOWN_SIZE, PRELU)
    assert report.skipped == (SKIPPED,)


def test_report_totals(report):
    # Unknown sizes count as 0; a kept site still runs its activation at full size.
    assert report.elements_before == 4096 + 800 + 64
    assert report.elements_saved == 3072 + 48
    assert report.elements_after == 1024 + 800 + 16
    assert report.elements_after == report.elements_before - report.elements_saved


def test_empty_report():
    empty = Report("empty", ())
    assert (empty.elements_before, empty.elements_after, empty.elements_saved) == (0, 0, 0)
    assert empty.moved == () and empty.skipped == ()
    assert str(empty) == ("empty: 0 of 0 candidate sites moved; activation elements per "
                          "sample 0 -> 0 (saved 0)")
    assert empty.to_dict() == {"subject": "empty", "sites": [], "moved": 0, "skipped": 0,
                               "elements_before": 0, "elements_after": 0,
                               "elements_saved": 0}


def test_report_to_dict(report):
    data = report.to_dict()
    assert list(data) == ["subject", "sites", "moved", "skipped", "elements_before",
                          "elements_after", "elements_saved"]
    assert data["subject"] == "net"
    assert data["sites"] == [s.to_dict() for s in SITES]
    assert (data["moved"], data["skipped"]) == (3, 1)
    assert (data["elements_before"], data["elements_after"], data["elements_saved"]) == (
        4960, 1840, 3120)


@pytest.mark.parametrize("indent", [2, None])
def test_report_to_json_round_trips(report, indent):
    text = report.to_json(indent=indent)
    assert json.loads(text) == report.to_dict()
    assert ("\n" in text) == (indent is not None)


def test_default_json_is_indented(report):
    assert report.to_json() == json.dumps(report.to_dict(), indent=2)


# -- The printed table -----------------------------------------------------------


def test_str_header_line(report):
    first = str(report).splitlines()[0]
    assert first == ("net: 3 of 4 candidate sites moved; activation elements per sample "
                     "4,960 -> 1,840 (saved 3,120); 1 site(s) of unknown size not counted")


def test_str_has_one_row_per_site(report):
    lines = str(report).splitlines()
    header, rows, notes = lines[1], lines[2:2 + len(SITES)], lines[2 + len(SITES):]
    for column in ("activation", "function", "pool", "between", "before", "after",
                   "decision"):
        assert column in header
    assert len(rows) == len(SITES)
    for row, s in zip(rows, SITES):
        assert s.activation in row and s.function in row and s.pool in row
    assert notes == [f"note: {NOTE}"]


def test_str_row_contents(report):
    moved, skipped, unknown, prelu = str(report).splitlines()[2:6]
    # fused activations are marked; the subject's own scope is not repeated
    assert moved.startswith("conv1 (fused) ") and "reshape, crop" in moved
    assert "4,096" in moved and "1,024" in moved and moved.endswith("moved")
    # a nested scope is shown; a kept site shows the reason, and its size unchanged
    assert skipped.startswith("block/act2 ")  # the scope, less the subject's own name
    assert skipped.endswith(PAD_REASON)
    assert skipped.count("800") == 2 and "200" not in skipped
    # unknown sizes print as "?"
    assert unknown.split().count("?") == 2
    assert "-" in prelu.split()  # nothing between
    assert prelu.endswith("moved")


def test_str_columns_are_aligned(report):
    lines = str(report).splitlines()[1:6]
    start = lines[0].index("function")
    for line in lines[1:]:
        assert line[start - 2:start] == "  " and line[start] != " "


def test_str_pool_missing_and_notes_deduplicated():
    a = site(activation="a", pool=None, moved=False, reason="no max pooling on the path",
             notes=("z note", "a note"))
    b = site(activation="b", notes=("a note",))
    text = str(Report("net", (a, b)))
    lines = text.splitlines()
    assert lines[0].startswith("net: 1 of 2 candidate sites moved")
    row_a = lines[2]
    assert row_a.startswith("a ") and row_a.endswith("no max pooling on the path")
    assert row_a.split()[2] == "-"  # activation, function, pool
    assert lines[-2:] == ["note: a note", "note: z note"]


# -- the runtime policy a site was decided under ---------------------------------------

TFLITE = "tflite (measured 2026-11-23, TF 2.21.0)"


def test_site_policy_defaults_to_any_and_is_in_the_dict():
    assert MOVED.policy == "any" and MOVED.to_dict()["policy"] == "any"
    assert site(policy=TFLITE).to_dict()["policy"] == TFLITE


def test_str_names_the_policy_on_the_second_line():
    refused = site(activation="conv1", moved=False, policy=TFLITE,
                   reason="relu measured 1.04x slower on tflite (resnet50; policy tflite, "
                          "measured 2026-11-23)")
    lines = str(Report("net", (refused, site(activation="act2", policy=TFLITE)))).splitlines()
    assert lines[0].startswith("net: 1 of 2 candidate sites moved")
    assert lines[1] == f"policy: {TFLITE}"
    assert "activation" in lines[2] and "decision" in lines[2]  # the table's header
    assert lines[3].startswith("conv1 ") and lines[3].endswith("measured 2026-11-23)")


def test_str_without_a_policy_has_no_policy_line(report):
    assert not any(line.startswith("policy:") for line in str(report).splitlines())


def test_str_lists_every_policy_of_a_merged_report():
    sites = (site(policy=TFLITE), site(policy="all (measured 2026-11-23, TF 2.21.0)"),
             site(policy="any"))
    assert str(Report("net", sites)).splitlines()[1] == (
        f"policy: all (measured 2026-11-23, TF 2.21.0); {TFLITE}")
