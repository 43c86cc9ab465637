"""Start-up facts (issue 14), not timings (those are benchmarks/startup.py's): what a fresh process has imported
after `import ganforge`, after the CLI's parser ran, and after one registry lookup. Each check runs in its own
interpreter, since this test process has long imported everything."""
import json
import subprocess
import sys
import textwrap

import pytest

import ganforge

HEAVY = ("torch", "numpy", "PIL", "matplotlib", "sklearn", "safetensors", "tqdm")


def loaded_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; the top-level packages and ganforge modules it imported."""
    probe = textwrap.dedent(code) + textwrap.dedent("""
        import json as _j, sys as _s
        print(_j.dumps({"heavy": sorted({m.split(".")[0] for m in _s.modules} & set(%r)),
                        "ganforge": sorted(m for m in _s.modules if m.startswith("ganforge"))}))
    """ % (HEAVY,))
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_ganforge_loads_no_torch_and_no_recipe():
    got = loaded_after("import ganforge; assert ganforge.__version__ and ganforge.GanforgeError")
    assert got["heavy"] == [] and got["ganforge"] == ["ganforge", "ganforge.errors"]


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["--version"], ["sample", "--help"],
                                  ["train", "--steps", "many"], ["export", "RUN"], ["interpolate"],
                                  ["serve", "--help"], ["serve"]])
def test_help_and_argument_errors_import_no_torch(argv):
    got = loaded_after(f"""
        from ganforge.cli import main
        try:
            main({argv!r})
        except SystemExit as e:
            assert e.code in (0, 2), e.code
        else:
            raise AssertionError("argparse did not exit")
    """)
    assert got["heavy"] == [], got
    assert not [m for m in got["ganforge"] if m.startswith(("ganforge.recipes.", "ganforge.commands."))]


def test_the_training_api_imports_no_family_no_spec_and_no_metrics():
    got = loaded_after("import ganforge; ganforge.train; ganforge.load")
    assert "torch" in got["heavy"]
    extra = [m for m in got["ganforge"] if m.startswith(("ganforge.metrics", "ganforge.commands"))
             or m.rpartition(".")[0] == "ganforge.recipes" and m not in ("ganforge.recipes.base",)
             or m.rpartition(".")[0] == "ganforge.data"
             and m not in ("ganforge.data.base", "ganforge.data.images", "ganforge.data.tabular")]   # viz's CSV writer
    assert not extra, extra


def test_a_lookup_imports_only_its_own_recipe_module():
    got = loaded_after("""
        from ganforge.registry import RECIPES
        from ganforge.errors import GanforgeError
        assert "dcgan" in RECIPES and len(sorted(RECIPES)) >= 16     # names: no module imported
        try:
            RECIPES.get_or_fail("dcgn")
        except GanforgeError as e:
            assert "did you mean 'dcgan'" in str(e)
        assert RECIPES["dcgan"].name == "dcgan"
    """)
    families = {m for m in got["ganforge"] if m.startswith("ganforge.recipes.")} - {
        "ganforge.recipes.base", "ganforge.recipes.adversarial", "ganforge.recipes.backbone"}
    assert families == {"ganforge.recipes.dcgan"}


def test_every_public_name_resolves():
    for name in ganforge.__all__:
        assert getattr(ganforge, name) is not None, name
    assert set(ganforge.__all__) <= set(dir(ganforge))
    with pytest.raises(AttributeError):
        ganforge.no_such_name    # noqa: B018
    from ganforge import losses   # a submodule is still importable by name through the package
    assert losses.ADVERSARIAL


def test_a_users_register_enrolls_the_name_and_built_in_names_are_refused(capsys):
    from ganforge.cli import main
    from ganforge.registry import RECIPES

    Template = RECIPES["gan"]

    try:
        @ganforge.register("startup_probe")
        class Probe(Template):
            """startup probe: a user's recipe. Second sentence."""
        assert "startup_probe" in RECIPES and RECIPES["startup_probe"] is Probe and Probe.name == "startup_probe"
        assert main(["list"]) == 0
        assert "startup_probe" in capsys.readouterr().out
    finally:
        RECIPES.pop("startup_probe", None)
    assert "startup_probe" not in RECIPES
    with pytest.raises(ValueError, match="built-in name"):
        ganforge.register("dcgan")(type("Mine", (Template,), {}))
