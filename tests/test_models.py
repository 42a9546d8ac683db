"""Models: registry, shapes, pinned ResNet size, formulation equivalence, AMP."""

import pytest
import torch
import torch.nn.functional as F

from har.errors import HarError
from har.models import (count_macs, count_parameters, create_model, describe_models, list_models,
                        model_config)

MODELS = ["cnn", "deepconvlstm", "resnet"]


def test_registry_lists_models():
    assert list_models() == MODELS
    assert model_config("resnet") == {"blocks": [1, 1, 1, 1], "widths": [64, 128, 256, 512],
                                      "formulation": "matmul"}


def test_resnet_size_is_pinned():
    model = create_model("resnet", window_steps=171, channels=36, num_classes=12)
    assert count_parameters(model) == 1_610_572
    assert count_macs(model, 171, 36) == 738_395_136
    conv2d = create_model("resnet", 171, 36, 12, formulation="conv2d")
    assert count_macs(conv2d, 171, 36) == 738_395_136


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("steps, channels", [(24, 3), (50, 9)])
def test_output_shape(name, steps, channels):
    model = create_model(name, steps, channels, num_classes=5)
    for train in (True, False):
        model.train(train)
        assert model(torch.randn(4, 1, steps, channels)).shape == (4, 5)


@pytest.mark.parametrize("name", ["resnet", "cnn"])
def test_formulation_shape_odd_and_tiny_windows(name):
    for steps in (1, 2, 7):
        model = create_model(name, steps, 2, 3, formulation="matmul").eval()
        ref = create_model(name, steps, 2, 3, formulation="conv2d").eval()
        ref.load_state_dict(model.state_dict())
        x = torch.randn(2, 1, steps, 2)
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["resnet", "cnn"])
@pytest.mark.parametrize("train", [True, False])
def test_formulations_agree(name, train):
    torch.manual_seed(0)
    hp = dict(blocks=[2, 1, 1], widths=[8, 16, 16])  # identity shortcuts too
    fast = create_model(name, 37, 5, 4, formulation="matmul", **hp)
    ref = create_model(name, 37, 5, 4, formulation="conv2d", **hp)
    assert fast.state_dict().keys() == ref.state_dict().keys()
    ref.load_state_dict(fast.state_dict())
    fast.train(train)
    ref.train(train)
    x = torch.randn(6, 1, 37, 5)
    y = torch.randint(0, 4, (6,))
    outs = []
    for model in (fast, ref):
        out = model(x)
        F.cross_entropy(out, y).backward()
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    g_fast, g_ref = _grads(fast), _grads(ref)
    for key in g_ref:
        torch.testing.assert_close(g_fast[key], g_ref[key], rtol=1e-3, atol=1e-5, msg=key)
    for key, value in ref.state_dict().items():  # running stats updated alike
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-4, atol=1e-6)


def test_unknown_model_lists_choices():
    with pytest.raises(HarError, match="unknown model 'resnet50'.*cnn, deepconvlstm, resnet"):
        create_model("resnet50", 171, 36, 12)


@pytest.mark.parametrize("name, hparams, pattern", [
    ("resnet", {"depth": 3}, "unknown hyper-parameter 'depth'.*blocks, widths, formulation"),
    ("resnet", {"widths": [64, 0]}, r"widths=\[64, 0\] is invalid"),
    ("resnet", {"blocks": [1, 1]}, r"blocks=\[1, 1\] is invalid; pass a list of 4 integers"),
    ("resnet", {"formulation": "fft"}, "formulation='fft' is invalid; choose one of matmul, conv2d"),
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
    assert short["deepconvlstm"]["parameters"] is None and "too short" in short["deepconvlstm"]["error"]


@pytest.mark.filterwarnings("ignore")  # tracer warnings: the channel-count guard, deprecation
@pytest.mark.parametrize("formulation", ["matmul", "conv2d"])
def test_traceable(formulation):
    model = create_model("resnet", 24, 3, 4, formulation=formulation).eval()
    x = torch.randn(2, 1, 24, 3)
    traced = torch.jit.trace(model, x)
    assert traced(torch.randn(5, 1, 24, 3)).shape == (5, 4)  # batch stays free
    torch.testing.assert_close(traced(x), model(x))
