"""`make test`'s arguments: the caller's `-m EXPR` and `-n N` are taken out and given to each phase
its own way (a serial test never runs in a parallel process), in pytest's both spellings."""

import pytest

from crm_project.devenv import _phase_options


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-x", "tests/flows"], (["-x", "tests/flows"], "", "")),
        (["-n", "4", "-m", "browser", "-x"], (["-x"], "browser", "4")),
        (["-n4", "-mbrowser", "-x"], (["-x"], "browser", "4")),
        (["--maxfail=1", "-k", "segments"], (["--maxfail=1", "-k", "segments"], "", "")),
    ],
)
def test_it_takes_the_marks_and_the_process_count_out_of_the_arguments(args, expected):
    assert _phase_options(args) == expected
