"""The PyTorch references used by `jaxir bench` are equivalent to the official code."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxir import registry
from jaxir.parity import golden_state_dict, load_golden
from jaxir.torch_reference import REFERENCES, build_reference

# golden model id -> jaxir model name (the reference's key in REFERENCES)
CASES = {
    "nafnet": "nafnet",
    "baseline": "nafnet_baseline",
    "mimo_unet": "mimo_unet",
    "mimo_unet_plus": "mimo_unet_plus",
    "convir": "convir",
    "convir_derain": "convir_derain",
    "restormer": "restormer",
    "restormer_dualpixel": "restormer",
    "p2ikt": "p2ikt",
    "xydeblur": "xydeblur",
    "stripformer": "stripformer",
    "msbdn": "msbdn",
    "promptir": "promptir",
    "guided_unet": "adm_unet",
    "cm_unet": "cm_unet",
    "airnet": "airnet",
    "da_rcot": "da_rcot",
    "moce_ir": "moce_ir",
    "mpmf_net": "mpmf_net",
}


def reference_kwargs(meta: dict) -> dict:
    """The sidecar's official kwargs in jaxir's builder convention, through the jaxir model's registry entry
    (the official kwargs as they are while that port is not registered)."""
    try:
        entry = registry.entry_for_official(meta["repo"], meta["class"], meta.get("file"))
    except KeyError:
        return dict(meta["kwargs"])
    kwargs = entry.translate_kwargs(meta["kwargs"]) if entry.translate_kwargs else dict(meta["kwargs"])
    kwargs.pop("block", None)
    return kwargs


def golden_torch_state(arrays: dict) -> dict:
    # Large goldens store weights as float16 values; the official forward ran on them in float32.
    return {k: torch.from_numpy(np.asarray(v, np.float32) if v.dtype.kind == "f" else v)
            for k, v in golden_state_dict(arrays).items()}


def param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_reference_reproduces_official_outputs(golden_dir, model_id):
    meta, arrays = load_golden(golden_dir / f"{model_id}.npz")
    assert CASES[model_id] in REFERENCES
    model = build_reference(CASES[model_id], **reference_kwargs(meta)).eval()
    model.load_state_dict(golden_torch_state(arrays), strict=True)
    assert param_count(model) == meta["param_count"]
    names = ["input"] + sorted((k for k in arrays if k.startswith("input_")), key=lambda k: int(k.split("_")[1]))
    inputs = [torch.from_numpy(arrays[name]) for name in names]
    with torch.no_grad():
        out = model(*inputs)
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    expected = sorted((k for k in arrays if k.startswith("output_")), key=lambda k: int(k.split("_")[1]))
    assert len(outputs) == len(expected)
    for got, key in zip(outputs, expected):
        np.testing.assert_allclose(got.numpy(), arrays[key], atol=1e-5, rtol=1e-5, err_msg=key)


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_reference_counts_paper_parameters(golden_dir, model_id):
    meta = json.loads((golden_dir / f"{model_id}.json").read_text())
    for name, config in meta["paper_configs"].items():
        kwargs = reference_kwargs({**meta, "kwargs": config["kwargs"]})
        with torch.device("meta"):  # shapes only: big configs cost nothing
            model = build_reference(CASES[model_id], **kwargs)
        assert param_count(model) == config["param_count"], name


def test_p2ikt_kernel_bank_equals_the_official(golden_dir):
    meta, arrays = load_golden(golden_dir / "p2ikt.npz")
    model = build_reference("p2ikt", **reference_kwargs(meta))
    assert "GCM.weight" not in model.state_dict()  # not official state: recomputed at construction
    np.testing.assert_allclose(model.GCM.weight.numpy(), arrays["aux/GCM.weight"], rtol=1e-6, atol=1e-7)


def test_p2ikt_rejects_unported_options():
    with pytest.raises(ValueError, match="kernel_mode"):
        build_reference("p2ikt", kernel_mode="TR")
    with pytest.raises(ValueError, match="num_gaussian_kernels == gaussian_kernel_size"):
        build_reference("p2ikt", num_gaussian_kernels=5, gaussian_kernel_size=7)


def test_unknown_reference_is_a_clear_error():
    with pytest.raises(KeyError, match="no PyTorch reference"):
        build_reference("no_such_model")


def test_p2ikt_predicted_kernels_stay_per_image():
    # The official convolves image by image; the reference's GCM batches it as one grouped conv.
    torch.manual_seed(0)
    gcm = build_reference("p2ikt").GCM.eval()
    x = torch.rand(3, 3, 32, 48)
    with torch.no_grad():
        batched = gcm(x)
        single = gcm(x[1:2])
    for got, want in zip(batched, single):
        torch.testing.assert_close(got[1:2], want, atol=1e-5, rtol=1e-5)


def test_msbdn_rdff_reference_equals_the_jaxir_port():
    """MSBDN-RDFF (ADMS's 28.7M backbone) has no golden file: the reference, whose DFF path the golden
    file proves, and the jaxir port agree on the same random weights, and both count 28,712,861."""
    import jax

    from jaxir.convert.state_dict import convert_state_dict

    torch.manual_seed(0)
    model = build_reference("msbdn", res_blocks=1, rdff=True).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        want = model(x).numpy()
    entry = registry.get_entry("msbdn")
    port = registry.build_model("msbdn", res_blocks=1, rdff=True)
    x_nhwc = np.transpose(x.numpy(), (0, 2, 3, 1))
    variables = convert_state_dict({k: v.numpy() for k, v in model.state_dict().items()}, port,
                                   jax.ShapeDtypeStruct(x_nhwc.shape, np.float32), hooks=entry.convert_hooks)
    got = np.transpose(np.asarray(jax.jit(port.apply)(variables, x_nhwc)), (0, 3, 1, 2))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    with torch.device("meta"):
        assert param_count(build_reference("msbdn", rdff=True)) == 28_712_861


def test_moce_ir_reference_runs_routed_experts_only_unless_dense(golden_dir):
    """Routed ('sparse', the official eval path) and all-experts ('dense') inference give the same image;
    only the dense one applies every expert (what `jaxir bench` compares)."""
    meta, arrays = load_golden(golden_dir / "moce_ir.npz")
    x = torch.from_numpy(arrays["input"][..., :32, :32]).repeat(2, 1, 1, 1)
    x[1] = x[1].flip(-1)
    outputs, calls = {}, {}
    for routing in ("sparse", "dense"):
        model = build_reference("moce_ir", **reference_kwargs(meta), routing=routing).eval()
        model.load_state_dict(golden_torch_state(arrays), strict=True)
        count = [0]
        for name, module in model.named_modules():
            if type(module).__name__ == "ModExpert":
                module.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
        with torch.no_grad():
            outputs[routing] = model(x).numpy()
        calls[routing] = count[0]
    blocks = sum(meta["kwargs"]["num_dec_blocks"])
    assert calls["sparse"] == 2 * blocks * meta["kwargs"]["topk"]  # per image, its top-k experts
    assert calls["dense"] == blocks * meta["kwargs"]["num_experts"]  # every expert, on the whole batch
    np.testing.assert_allclose(outputs["sparse"], outputs["dense"], atol=1e-5, rtol=1e-5)
