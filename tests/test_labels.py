"""One validator for the label (membrane or volume), used by every caller."""

import pytest

from smlmspine._labels import LABELS, check_label
from smlmspine.errors import ParameterError


def test_accepts_the_two_labels():
    assert [check_label(x) for x in LABELS] == ["membrane", "volume"]


@pytest.mark.parametrize("bad", ["Membrane", "surface", "", None, 1, ("membrane",)])
def test_refuses_everything_else_in_one_line(bad):
    with pytest.raises(ParameterError) as err:
        check_label(bad, name="--label")
    assert str(err.value) == f"--label must be 'membrane' or 'volume', got {bad!r}"


def test_pipeline_uses_it(tmp_path):
    from smlmspine.pipeline import run

    with pytest.raises(ParameterError, match="^label must be 'membrane' or 'volume', got 'x'$"):
        run(tmp_path / "none.csv", tmp_path / "out", label="x")
    assert not (tmp_path / "out").exists()
