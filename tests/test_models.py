"""Models: registry, shapes, pinned ResNet size, one graph for resnet and cnn, AMP."""

import pytest
import torch
import torch.nn.functional as F

from har.models import (
    count_macs,
    count_parameters,
    create_model,
    describe_models,
    list_models,
    model_config,
)
from harkit.errors import HarError

MODELS = ["cnn", "deepconvlstm", "resnet"]


def test_registry_lists_models():
    assert list_models() == MODELS
    assert model_config("resnet") == {"blocks": [1, 1, 1, 1], "widths": [64, 128, 256, 512]}


def test_resnet_size_is_pinned():
    model = create_model("resnet", window_steps=171, channels=36, num_classes=12)
    assert count_parameters(model) == 1_610_572
    assert count_macs(model, 171, 36) == 738_395_136
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 12 and all(c.bias is not None for c in convs)   # the seed's conv biases


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("steps, channels", [(24, 3), (50, 9)])
def test_output_shape(name, steps, channels):
    model = create_model(name, steps, channels, num_classes=5)
    for train in (True, False):
        model.train(train)
        assert model(torch.randn(4, 1, steps, channels)).shape == (4, 5)


def test_cnn_is_the_resnet_without_shortcuts():
    """One definition: the same block class and state-dict layout, minus the shortcut convs."""
    hp = dict(blocks=[2, 1], widths=[8, 16])           # an identity shortcut in stage 1 too
    resnet, cnn = create_model("resnet", 24, 3, 4, **hp), create_model("cnn", 24, 3, 4, **hp)
    assert type(resnet) is type(cnn)
    keys = set(resnet.state_dict())
    shortcut = {k for k in keys if ".shortcut." in k}
    assert shortcut and all(k.startswith(("stages.0.0.", "stages.1.0.")) for k in shortcut)
    assert set(cnn.state_dict()) == keys - shortcut
    torch.manual_seed(0)
    plain = create_model("cnn", 24, 3, 4, **hp).eval()
    x = torch.randn(2, 1, 24, 3)
    h = x
    for stage in plain.stages:                          # no shortcut is added anywhere
        for block in stage:
            h = block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h))))))
    torch.testing.assert_close(plain(x), plain.fc(torch.flatten(plain.pool(h), 1)))


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_odd_and_tiny_windows(steps):
    model = create_model("resnet", steps, 2, 3).eval()
    assert model(torch.randn(2, 1, steps, 2)).shape == (2, 3)


def test_unknown_model_lists_choices():
    with pytest.raises(HarError, match="unknown model 'resnet50'.*cnn, deepconvlstm, resnet"):
        create_model("resnet50", 171, 36, 12)


@pytest.mark.parametrize("name, hparams, pattern", [
    ("resnet", {"depth": 3}, "unknown hyper-parameter 'depth'.*blocks, widths"),
    ("resnet", {"widths": [64, 0]}, r"widths=\[64, 0\] is invalid"),
    ("resnet", {"blocks": [1, 1]}, r"blocks=\[1, 1\] is invalid; pass a list of 4 integers"),
    ("resnet", {"formulation": "matmul"}, "unknown hyper-parameter 'formulation'"),
    ("cnn", {"widths": "64"}, "widths='64' is invalid"),
    ("deepconvlstm", {"dropout": 1.5}, r"dropout=1.5 is invalid; pass a number in \[0.0, 1.0\)"),
    ("deepconvlstm", {"lstm_units": True}, "lstm_units=True is invalid"),
])
def test_bad_hparam_is_named(name, hparams, pattern):
    with pytest.raises(HarError, match=f"model {name}: {pattern}"):
        create_model(name, 171, 36, 12, **hparams)


def test_bad_shape_arguments():
    with pytest.raises(HarError, match="num_classes=1 is invalid; pass an integer >= 2"):
        create_model("resnet", 171, 36, 1)
    with pytest.raises(HarError, match="window_steps=16 is too short.*at least 17 steps"):
        create_model("deepconvlstm", 16, 3, 4)


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip(name):
    model = create_model(name, 30, 4, 3)
    config = model.config
    assert config["name"] == name and config["window_steps"] == 30
    assert all(isinstance(v, (str, int, float, list)) for v in config.values())
    clone = create_model(**config)
    assert clone.config == config
    clone.load_state_dict(model.state_dict())  # strict: same keys and shapes
    model.eval()
    clone.eval()
    x = torch.randn(2, 1, 30, 4)
    torch.testing.assert_close(clone(x), model(x))


def test_wrong_channel_count_is_refused():
    model = create_model("resnet", 24, 3, 4)
    with pytest.raises(ValueError, match="expected 3 sensor channels"):
        model(torch.randn(2, 1, 24, 5))


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_step(name):
    torch.manual_seed(0)
    model = create_model(name, 24, 3, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 1, 24, 3), torch.randint(0, 4, (8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_describe_models():
    rows = {row["name"]: row for row in describe_models(171, 36, 12)}
    assert set(rows) == set(MODELS)
    assert rows["resnet"]["parameters"] == 1_610_572
    assert rows["resnet"]["macs"] == 738_395_136
    assert all(row["description"] for row in rows.values())
    short = {row["name"]: row for row in describe_models(12, 3, 4)}
    assert short["deepconvlstm"]["parameters"] is None
    assert "too short" in short["deepconvlstm"]["error"]


@pytest.mark.filterwarnings("ignore")  # tracer warnings: the channel-count guard, deprecation
def test_traceable():
    model = create_model("resnet", 24, 3, 4).eval()
    x = torch.randn(2, 1, 24, 3)
    traced = torch.jit.trace(model, x)
    assert traced(torch.randn(5, 1, 24, 3)).shape == (5, 4)  # batch stays free
    torch.testing.assert_close(traced(x), model(x))
