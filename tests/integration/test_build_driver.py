"""The build driver on tiny real recipes: caching by recipe hash, failure reporting."""

from __future__ import annotations

import pytest

from ftforge.build.driver import BuildRequest, build
from ftforge.errors import BuildFailedError

from .conftest import TINY
from .conftest import tiny_recipe as _recipe

pytestmark = pytest.mark.integration

def test_second_build_comes_from_the_cache(tmp_path, isolated_cache):
    recipe = _recipe(tmp_path / "tiny", "one")
    first = build(BuildRequest(recipe, tmp_path / "out1", test="skip"))
    second = build(BuildRequest(recipe, tmp_path / "out2", test="skip"))
    assert not first.cached and second.cached
    assert first.cache_key == second.cache_key
    assert sorted(p.name for p in second.packages) == [
        "ftforge-tiny-1.0-plain_0.conda", "ftforge-tiny-1.0-spicy_0.conda"]
    assert (tmp_path / "out2" / "noarch" / "repodata.json").exists() or \
        (tmp_path / "out2" / "linux-64" / "repodata.json").exists()
    keys = first.cache_key.split(",")
    assert len(keys) == 2  # one cache entry per variant combination
    assert all((isolated_cache / "builds" / k / "manifest.json").is_file() for k in keys)
    pinned = build(BuildRequest(recipe, tmp_path / "out3", overrides=(("flavour", "spicy"),),
                                test="skip"))
    assert pinned.cached and pinned.cache_key in keys


def test_recipe_change_misses_the_cache_and_variant_pins_one_build(tmp_path, isolated_cache):
    recipe = _recipe(tmp_path / "tiny", "one")
    first = build(BuildRequest(recipe, tmp_path / "out", overrides=(("flavour", "spicy"),),
                               test="skip"))
    assert [p.name for p in first.packages] == ["ftforge-tiny-1.0-spicy_0.conda"]
    _recipe(tmp_path / "tiny", "two")
    second = build(BuildRequest(recipe, tmp_path / "out", overrides=(("flavour", "spicy"),),
                                test="skip"))
    assert not second.cached and second.cache_key != first.cache_key


def test_failing_script_is_reported_with_its_output(tmp_path, isolated_cache):
    recipe = tmp_path / "broken"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text(
        TINY.format(marker="x").replace("    - mkdir -p $PREFIX/share\n",
                                        "    - echo no libfrobnicate found\n"
                                        "    - exit 3\n").replace("${{ flavour }}", "plain"))
    with pytest.raises(BuildFailedError) as info:
        build(BuildRequest(recipe, tmp_path / "out", test="skip"))
    assert "ftforge-tiny" in str(info.value)
    assert "no libfrobnicate found" in str(info.value)
    assert info.value.hint and ".failed/build.log" in info.value.hint
    assert not list((tmp_path / "out").glob("*/*.conda"))


def test_missing_library_header_is_one_line_with_what_to_do(tmp_path, isolated_cache):
    recipe = tmp_path / "needs-lib"
    recipe.mkdir()
    (recipe / "recipe.yaml").write_text("""schema_version: 1
package:
  name: needs-frobnicate
  version: "1.0"
build:
  script:
    - printf '#include <frobnicate/frob.h>\\nint main(void){return 0;}\\n' > t.c
    - $CC t.c -o t
requirements:
  build:
    - ${{ compiler('c') }}
""")
    with pytest.raises(BuildFailedError) as info:
        build(BuildRequest(recipe, tmp_path / "out", test="skip"))
    assert str(info.value.message).count("\n") == 0
    assert "the C header frobnicate/frob.h is not installed" in info.value.message
    assert "apt-file search frobnicate/frob.h" in info.value.hint
