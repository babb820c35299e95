"""docs/api.md and the package agree: every public name is documented there and importable, and nothing listed
there is missing from the package."""
import re

import spectralkd
import spectralkd.sr
from spectralkd.paths import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "api.md").read_text()


def test_every_public_name_is_documented_and_importable():
    for name in spectralkd.__all__:
        if name == "__version__":
            continue
        assert f"spectralkd.{name}" in DOC, f"spectralkd.{name} is not in docs/api.md"
        assert getattr(spectralkd, name) is not None
    for name in spectralkd.sr.__all__:
        assert re.search(rf"`{name}\(", DOC), f"spectralkd.sr.{name} is not in docs/api.md"
        assert callable(getattr(spectralkd.sr, name))


def test_documented_names_exist():
    for name in set(re.findall(r"`spectralkd\.([A-Za-z_]+)\(", DOC)):
        assert name in spectralkd.__all__, f"docs/api.md documents spectralkd.{name}, which is not public"


def test_unknown_name_is_an_attribute_error():
    try:
        spectralkd.nonexistent_thing
    except AttributeError as exc:
        assert "nonexistent_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
