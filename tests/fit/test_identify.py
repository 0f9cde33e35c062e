"""What the runs identify (scalelab/fit/identify.py): the rule for E, shared by the fit's warning and the planner."""

import pytest

from fit.conftest import synthetic
from scalelab.errors import ScalelabError
from scalelab.fit import FitSpec, fit_laws
from scalelab.fit.identify import e_gap


def test_e_is_not_identified_at_the_floor_of_the_search_or_with_an_interval_reaching_far_below_it():
    assert "floor of the search" in e_gap(1e-4, [1e-4, 3.9])
    why = e_gap(0.731, [1e-4, 1.03])
    assert "interval [0.0001, 1.03]" in why and "0.731" not in why  # the estimate is not a reading of the data
    assert e_gap(1.8, [1.5, 2.0]) is None and e_gap(1.8) is None


def test_a_fit_whose_e_sits_at_the_floor_warns_even_when_its_interval_starts_there():
    # no floor in the data: the point estimate is the search box's bound, and so is the interval's lower end
    g = fit_laws(synthetic(E=0.0), FitSpec(n_col="N", d_col="D", loss_col="loss"), bootstrap=30)["all"]
    assert g.params["E"] <= 1.0001e-4
    assert any(w.startswith("E is not identified") and "floor of the search" in w for w in g.warnings), g.warnings


def test_a_one_size_or_one_token_count_law_is_refused_on_points_that_vary_in_it():
    df = synthetic()  # 6 sizes x 5 tokens/param: both vary
    for form, needle in (("data", "at one model size, and these points have 6"), ("size", "at one token count")):
        with pytest.raises(ScalelabError, match=needle):
            fit_laws(df, FitSpec(n_col="N", d_col="D", loss_col="loss", form=form), bootstrap=0)
    one = df[df["N"] == df["N"].iloc[0]]  # one size: L(D) is what it identifies
    assert fit_laws(one, FitSpec(n_col="N", d_col="D", loss_col="loss", form="data"), bootstrap=0)["all"].form == "data"
