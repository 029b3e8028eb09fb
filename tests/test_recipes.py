"""Every experiments/ config and variant against its official training values (experiments/recipes.toml)."""
import json

import pytest

from jaxir import recipes
from jaxir.cli import main
from jaxir.config import config_variants, load_config

TABLE = recipes.load_table()
SPECS = recipes.all_specs()


@pytest.mark.parametrize("spec", SPECS)
def test_config_matches_its_official_recipe(spec):
    report = recipes.check(spec, table=TABLE)
    # A config without rows fails here with its name: add its [[recipe]] block (README, "Recipe fidelity").
    assert report.ok, "\n" + report.format()
    assert report.reason or len(report.rows) >= len(recipes.REQUIRED_ITEMS)


def test_table_names_only_existing_configs_and_variants():
    assert recipes.check_table(TABLE) == []


def test_sources_are_the_commits_the_ports_follow(golden_dir):
    for name, source in TABLE["sources"].items():
        sidecar = json.loads((golden_dir / source["golden"]).read_text())
        assert (source["repo"], source["commit"]) == (sidecar["repo"], sidecar["commit"]), name


def _all_rows():
    for template in TABLE.get("template", {}).values():
        yield from template["rows"]
    for block in TABLE["recipe"]:
        yield from block.get("rows", [])


def test_every_row_names_its_source_and_a_check():
    for row in _all_rows():
        assert ("key" in row) != ("cite" in row), f"row {row['item']!r}: give file+key, or cite, not both"
        assert "official" in row or str(row.get("expect", "")).startswith("="), row["item"]
        assert "config" in row or "bind" in row or "deviation" in row, f"row {row['item']!r} checks nothing"


@pytest.mark.parametrize("name", recipes.config_files())
def test_variants_default_first_and_others_rejected(name):
    # The table covers the VARIANTS a config declares; an argument it accepts silently would escape the check.
    variants = config_variants(name)
    if variants != [""]:
        assert load_config(name).to_dict() == load_config(f"{name}:{variants[0]}").to_dict(), \
            f"{name}: get_config() must equal its first VARIANTS entry, the default"
    try:
        load_config(f"{name}:not-a-variant")
    except ValueError:
        return
    pytest.fail(f"{name} accepts the argument 'not-a-variant': list the arguments it takes in a module-level "
                f"VARIANTS (default first) and raise ValueError for any other")


def test_a_config_without_rows_fails_naming_it():
    report = recipes.check("mimo_unet_gopro.py", table={"sources": TABLE["sources"], "recipe": []})
    assert not report.ok
    assert "mimo_unet_gopro.py has no rows in experiments/recipes.toml" in report.problems[0]


def test_a_block_missing_required_items_fails():
    block = {"config": "mimo_unet_gopro.py", "source": "mimo_unet", "file": "main.py",
             "rows": [{"item": "lr", "key": "--learning_rate", "official": 1e-4, "config": "optim.lr"}]}
    report = recipes.check("mimo_unet_gopro.py", table={"sources": TABLE["sources"], "recipe": [block]})
    assert [r.status for r in report.rows] == ["ok"]
    assert any("no row for 'seed'" in p for p in report.problems) and not report.ok


def test_overridden_values_are_mismatches():
    report = recipes.check("nafnet_gopro.py:width64", ["--config.train.num_steps=200000",
                                                       "--config.data.batch_size=32"], table=TABLE)
    assert {r.item for r in report.mismatches} == {"iterations", "schedule.T_max", "global_batch"}
    assert "expected  400000" in report.format()


def test_nafnet_width64_is_the_official_width64_recipe():
    # options/train/GoPro/{NAFNet,Baseline}-width64.yml: 400k iterations at 8 GPUs x 8; Baseline weight decay 0.
    for spec, decay in (("nafnet_gopro.py:width64", 1e-3), ("nafnet_gopro.py:baseline-width64", 0.0)):
        c = load_config(f"experiments/{spec}")
        assert (c.train.num_steps, c.data.batch_size, c.optim.weight_decay, c.train.seed) == (400_000, 64, decay, 10)
        assert c.optim.clip_norm == 0.01


def test_formulas_are_arithmetic_only():
    assert recipes.evaluate("[m * ceil(n / 4) for m in xs if m < 3]", {"n": 2103, "xs": [1, 2, 3]}) == [526, 1052]
    for bad in ("__import__('os')", "xs.append(1)", "(lambda: 1)()"):
        with pytest.raises(recipes.RecipeError):
            recipes.evaluate(bad, {"xs": []})


def test_recipe_command(capsys):
    assert main(["recipe", "experiments/nafnet_gopro.py:width64"]) == 0
    out = capsys.readouterr().out
    assert "options/train/GoPro/NAFNet-width64.yml: train.total_iter" in out and "400000" in out
    assert "megvii-research/NAFNet at 2b4af71ebe098a92a75910c233a3965a3e93ede4" in out
    assert "  deviation train_data\n" in out and "OK: 23 rows, 1 deviations" in out
    with pytest.raises(SystemExit):
        main(["recipe", "nafnet_gopro.py:width64", "--config.optim.weight_decay=0.0"])
    assert "MISMATCH  weight_decay" in capsys.readouterr().out
    assert main(["recipe", "nafnet_gopro.py:no-such-variant"]) == 2
