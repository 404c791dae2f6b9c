"""Each method declares its options once (issue 21, item 4): `Method.options` (plus the keys every method has,
`COMMON_OPTIONS`) states every key its YAML may hold, with the default and the valid values, and the run spec checks
the composed `method` block against it (`Method.check_options`) before any model loads. A typo or a bad value is one
line naming the key, the value and the fix."""

import sys
from collections import defaultdict

import pytest
from helpers import tiny_cfg
from omegaconf import OmegaConf

from astra_repro.errors import ConfigError
from astra_repro.methods import METHODS
from astra_repro.methods.base import COMMON_OPTIONS
from astra_repro.paths import CONFIG_DIR
from astra_repro.spec import RunSpec

YAMLS = sorted((CONFIG_DIR / "method").glob("*.yaml"))
YAMLS_OF = defaultdict(list)  # registry name -> its shipped YAMLs (astra has two: astra, astra_paper_math)
for _path in YAMLS:
    YAMLS_OF[OmegaConf.load(_path).name].append(_path)

# Every declared option that has valid values, per registered method.
CHOICE_OPTIONS = [
    (name, key) for name, cls in METHODS for key, option in {**COMMON_OPTIONS, **cls.options}.items()
    if option.choices is not None
]


def yaml_block(path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def test_every_registered_method_ships_a_yaml():
    assert set(METHODS.names()) == set(YAMLS_OF), "a method without configs/method/<name>.yaml, or a YAML without a method"


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_the_shipped_yaml_passes_and_every_key_is_declared(path):
    block = yaml_block(path)
    cls = METHODS.get(block["name"])
    assert set(block) <= set(COMMON_OPTIONS) | set(cls.options), set(block) - set(COMMON_OPTIONS) - set(cls.options)
    # fill=False is what the run spec stores: the YAML's own values, nothing added (its dict is the run hash)
    assert cls.check_options(block, fill=False) == block
    filled = cls.check_options(block)
    assert {k: filled[k] for k in block} == block and set(filled) == set(COMMON_OPTIONS) | set(cls.options)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_declared_default_passes_its_own_check(name):
    cls = METHODS.get(name)
    defaults = {key: option.default for key, option in {**COMMON_OPTIONS, **cls.options}.items()}
    assert cls.check_options(defaults, fill=False) == defaults


@pytest.mark.parametrize("name,key", CHOICE_OPTIONS, ids=[f"{n}.{k}" for n, k in CHOICE_OPTIONS])
def test_a_value_outside_the_choices_is_one_line(name, key):
    cls = METHODS.get(name)
    with pytest.raises(ConfigError) as err:
        cls.check_options({key: "not_a_choice"})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"method.{key}='not_a_choice' is not valid for {name}; valid: ")
    assert all(str(choice) in message for choice in {**COMMON_OPTIONS, **cls.options}[key].choices)


@pytest.mark.parametrize(
    "name,values,message",
    [
        ("astra", {"subspace": "tail"}, r"^method\.subspace='tail' is not valid for astra; valid: largest, smallest, window, random$"),
        ("astra", {"window_start": "d/3"}, r"^method\.window_start='d/3' is not valid for astra; valid: 0, d/4, d/2, 3d/4, d-r or an integer$"),
        ("astra", {"window_start": -1}, r"^method\.window_start=-1 must be >= 0"),
        ("astra", {"accumulate_dtype": None}, r"^method\.accumulate_dtype=None is not valid for astra; valid: auto, "),
        ("astra", {"center": "sometimes"}, r"^method\.center='sometimes' is not a boolean"),
        ("pissa", {"niter": -1}, r"^method\.niter=-1 must be >= 0; set method\.niter=<integer >= 0>$"),
        ("pissa", {"niter": "many"}, r"^method\.niter='many' is not an integer"),
        ("corda", {"mode": "IPM"}, r"^method\.mode='IPM' is not valid for corda; valid: ipm, kpm$"),
        ("milora", {"mode": "smallest"}, r"^method\.mode='smallest' is not valid for milora; valid: min, mid, max, random$"),
        ("loraga", {"grad_examples": 0}, r"^method\.grad_examples=0 must be >= 1"),
        ("eva", {"rho": 0.5}, r"^method\.rho=0\.5 must be >= 1\.0"),
        ("eva", {"max_examples": None}, None),  # None = all: an option whose default is None takes None
        ("loraplus", {"lr_ratio": "x"}, r"^method\.lr_ratio='x' is not a number"),
        ("lora", {"label": 3}, r"^method\.label=3 is not a string; set method\.label=<string>$"),
        ("lora", {"task_type": "SEQ_2_SEQ_LM"}, None),
    ],
)
def test_types_ranges_and_choices(name, values, message):
    cls = METHODS.get(name)
    if message is None:
        assert cls.check_options(values, fill=False) == values
        return
    with pytest.raises(ConfigError, match=message) as err:
        cls.check_options(values)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name,typo,nearest",
    [("astra", "subspce", "subspace"), ("pissa", "n_iter", "niter"), ("loraga", "directon", "direction"),
     ("lora", "drop_out", "dropout"), ("eva", "batchsize", "batch_size")],
)
def test_an_unknown_key_names_the_nearest(name, typo, nearest):
    with pytest.raises(ConfigError) as err:
        METHODS.get(name).check_options({typo: 1})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"method.{typo} is not an option of {name}; did you mean method.{nearest}? (valid: ")


def test_an_unknown_key_far_from_any_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"^method\.zzz is not an option of lora; valid: name, description, "):
        METHODS.get("lora").check_options({"zzz": 1})


def test_an_init_reads_the_declared_defaults():
    astra = METHODS.get("astra")
    filled = astra.check_options({})
    assert filled["name"] == "astra"
    assert {k: filled[k] for k in astra.options} == {k: o.default for k, o in astra.options.items()}


@pytest.fixture
def no_model_loads(monkeypatch):
    """Every loaded astra_repro module's `load_model` (imported by name in several) refuses to run."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the method options were checked")

    for name, module in list(sys.modules.items()):
        if name.startswith("astra_repro") and hasattr(module, "load_model"):
            monkeypatch.setattr(module, "load_model", refuse)


def test_the_spec_refuses_a_typo_before_any_model_loads(no_model_loads, tmp_path):
    from astra_repro.train import run

    cfg = tiny_cfg("method=astra", "+method.subspce=largest", f"output_root={tmp_path}")
    expected = r"^method\.subspce is not an option of astra; did you mean method\.subspace\? \(valid: "
    with pytest.raises(ConfigError, match=expected):
        RunSpec.from_config(cfg)
    with pytest.raises(ConfigError, match=expected):
        run(cfg)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method=pissa", "method.svd=approximate"], r"^method\.svd='approximate' is not valid for pissa; valid: fast, exact$"),
        (["method=loraga", "method.direction=AB"], r"^method\.direction='AB' is not valid for loraga; valid: ArB2r, ArBr, A2rBr$"),
        (["method=corda", "method.normalize=max"], r"^method\.normalize='max' is not valid for corda; valid: absmax, none$"),
    ],
)
def test_the_spec_refuses_a_bad_value(no_model_loads, overrides, message):
    with pytest.raises(ConfigError, match=message):
        RunSpec.from_config(tiny_cfg(*overrides))


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_the_spec_keeps_the_method_block_as_composed(path):
    """The run hash reads spec.method: the check adds no defaults and changes no value (only `description` is out)."""
    cfg = tiny_cfg(f"method={path.stem}")
    composed = OmegaConf.to_container(cfg.method, resolve=True)
    plan = RunSpec.from_config(cfg).plan()
    assert plan["method"] == {k: v for k, v in composed.items() if k != "description"}
