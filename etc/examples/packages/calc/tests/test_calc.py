import os

import pytest

import calc


def test_add():
    assert calc.add(2, 3) == 5


def test_mean():
    assert calc.mean([1, 2, 3, 4]) == 2.5


def test_mean_of_nothing():
    with pytest.raises(ValueError):
        calc.mean([])


def test_runtime_variables_reach_the_tests():
    # [runtime] in the delivery and the test block's own `runtime` list are applied.
    assert os.environ.get("EXAMPLE_MODE") == "delivery"
    assert os.environ.get("CALC_PRECISION") == "double"


@pytest.mark.skip(reason="shows up as skipped in the JUnit summary")
def test_skipped():
    pass
