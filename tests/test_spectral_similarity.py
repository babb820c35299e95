"""Curve comparison at common relative depth."""
import math

import numpy as np
import pytest

from spectralkd.errors import UserError
from spectralkd.spectral import curve_correlation, mean_layer_distance, resample_curve


def test_resample_to_relative_depth():
    # 3 layers at depths 0, .5, 1 -> 5 points at 0, .25, .5, .75, 1
    np.testing.assert_allclose(resample_curve([0.0, 2.0, 6.0], 5), [0, 1, 2, 4, 6])
    np.testing.assert_allclose(resample_curve([4.0], 3), [4, 4, 4])


def test_correlation_and_distance_of_curves_with_different_depths():
    teacher = np.linspace(0, 1, 24) ** 2
    student = np.linspace(0, 1, 12) ** 2
    assert curve_correlation(teacher, student) > 0.999
    assert curve_correlation(teacher, -student) < -0.999
    assert mean_layer_distance([0, 1, 2], [1, 2, 3, 4, 5]) == pytest.approx(np.mean(np.abs(
        np.interp(np.linspace(0, 1, 5), [0, .5, 1], [0, 1, 2]) - np.array([1, 2, 3, 4, 5]))))
    assert math.isnan(curve_correlation([1, 1, 1], [1, 2, 3]))
    with pytest.raises(UserError):
        resample_curve([], 3)
