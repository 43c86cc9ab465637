import pytest

from ganforge.config import from_dict, load_yaml, parse_overrides, to_dict
from ganforge.errors import GanforgeError
from ganforge.recipes.dcgan import DCGANConfig


def test_overrides_are_typed():
    cfg = from_dict(DCGANConfig, parse_overrides(["steps=12", "g_lr=1e-3", "ema_decay=0.5", "skip_bad=true",
                                                  "betas=0.0,0.9", "data=toy:ring"]))
    assert (cfg.steps, cfg.g_lr, cfg.ema_decay, cfg.skip_bad, cfg.betas, cfg.data) == (
        12, 1e-3, 0.5, True, (0.0, 0.9), "toy:ring")


def test_unknown_key_suggests_the_closest():
    with pytest.raises(GanforgeError, match="unknown config key 'lr_g'.*did you mean 'g_lr'"):
        from_dict(DCGANConfig, {"lr_g": 1})


@pytest.mark.parametrize("pair,msg", [("steps=abc", "expects int"), ("steps=1.5", "expects int"),
                                      ("skip_bad=maybe", "expects bool"), ("g_lr=fast", "expects float"),
                                      ("device=gpu", "must be one of"), ("steps=0", ">= 1")])
def test_bad_values(pair, msg):
    with pytest.raises(GanforgeError, match=msg):
        from_dict(DCGANConfig, parse_overrides([pair]))


def test_override_syntax():
    with pytest.raises(GanforgeError, match="key=value"):
        parse_overrides(["steps"])


def test_yaml_roundtrip(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("recipe: dcgan\nsteps: 7\nbetas: [0.0, 0.99]\n")
    d = load_yaml(p)
    d.pop("recipe")
    cfg = from_dict(DCGANConfig, d)
    assert cfg.steps == 7 and cfg.betas == (0.0, 0.99)
    assert from_dict(DCGANConfig, to_dict(cfg)) == cfg
    (tmp_path / "bad.yaml").write_text("steps: [1\n")
    with pytest.raises(GanforgeError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(GanforgeError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_the_trainer_reads_training_settings_from_train_config_only():
    """TrainConfig holds what the trainer owns; of the recipe's knobs it reads only the optimisation schedule
    it applies to every family (lr decay, EMA). Checked on trainer.py's source: every `cfg.X` it reads."""
    import ast
    from pathlib import Path

    from ganforge.config import TrainConfig, train_keys
    from ganforge.recipes.base import RecipeConfig

    src = Path(__file__).resolve().parents[1] / "src" / "ganforge" / "training" / "trainer.py"
    read = {n.attr for n in ast.walk(ast.parse(src.read_text()))
            if isinstance(n, ast.Attribute) and isinstance(n.value, (ast.Name, ast.Attribute))
            and (getattr(n.value, "id", None) == "cfg" or getattr(n.value, "attr", None) == "cfg")}
    assert read and read - train_keys() <= {"lr_decay_start", "ema_decay"}, read - train_keys()
    assert issubclass(RecipeConfig, TrainConfig) and "steps" in train_keys() and "g_lr" not in train_keys()


def test_list_keys_shows_the_recipe_knobs_apart_from_the_training_settings(capsys):
    from ganforge.cli import main

    assert main(["list", "--keys", "dcgan"]) == 0
    out = capsys.readouterr().out
    knobs, training = out.split("training (every recipe):")
    assert "g_width = 64" in knobs and "  steps =" not in knobs and "steps = 1500" in training and "g_lr" not in training
