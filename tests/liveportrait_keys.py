"""Parameter names and shapes of the official LivePortrait checkpoints, written out from the
published architecture (KwaiVGI/LivePortrait src/modules + src/config/models.yaml) independently
of our modules: the test checks that our modules have exactly these keys."""
from __future__ import annotations

Spec = dict[str, tuple[int, ...]]


def conv(spec: Spec, name: str, cout: int, cin: int, k: tuple[int, ...], bias: bool = True) -> None:
    spec[f"{name}.weight"] = (cout, cin, *k)
    if bias:
        spec[f"{name}.bias"] = (cout,)


def sn_conv(spec: Spec, name: str, cout: int, cin: int, k: int, bias: bool = True) -> None:
    """torch.nn.utils.spectral_norm: weight_orig + power-iteration vectors u (out), v (in*k*k)."""
    if bias:
        spec[f"{name}.bias"] = (cout,)
    spec[f"{name}.weight_orig"] = (cout, cin, k, k)
    spec[f"{name}.weight_u"] = (cout,)
    spec[f"{name}.weight_v"] = (cin * k * k,)


def bn(spec: Spec, name: str, c: int) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        spec[f"{name}.{p}"] = (c,)
    spec[f"{name}.num_batches_tracked"] = ()


def vec(spec: Spec, name: str, c: int) -> None:
    spec[f"{name}.weight"] = (c,)
    spec[f"{name}.bias"] = (c,)


def linear(spec: Spec, name: str, cout: int, cin: int) -> None:
    spec[f"{name}.weight"] = (cout, cin)
    spec[f"{name}.bias"] = (cout,)


def appearance() -> Spec:
    s: Spec = {}
    conv(s, "first.conv", 64, 3, (3, 3)); bn(s, "first.norm", 64)
    for i, (a, b) in enumerate([(64, 128), (128, 256)]):
        conv(s, f"down_blocks.{i}.conv", b, a, (3, 3)); bn(s, f"down_blocks.{i}.norm", b)
    conv(s, "second", 512, 256, (1, 1))
    for i in range(6):
        for j in (1, 2):
            conv(s, f"resblocks_3d.3dr{i}.conv{j}", 32, 32, (3, 3, 3)); bn(s, f"resblocks_3d.3dr{i}.norm{j}", 32)
    return s


def motion() -> Spec:
    s: Spec = {}
    dims, depths = [96, 192, 384, 768], [3, 3, 9, 3]
    conv(s, "detector.downsample_layers.0.0", 96, 3, (4, 4)); vec(s, "detector.downsample_layers.0.1", 96)
    for i in range(3):
        vec(s, f"detector.downsample_layers.{i + 1}.0", dims[i])
        conv(s, f"detector.downsample_layers.{i + 1}.1", dims[i + 1], dims[i], (2, 2))
    for i, (d, n) in enumerate(zip(dims, depths)):
        for j in range(n):
            p = f"detector.stages.{i}.{j}"
            conv(s, f"{p}.dwconv", d, 1, (7, 7)); vec(s, f"{p}.norm", d)
            linear(s, f"{p}.pwconv1", 4 * d, d)
            s[f"{p}.grn.gamma"] = (1, 1, 1, 4 * d); s[f"{p}.grn.beta"] = (1, 1, 1, 4 * d)
            linear(s, f"{p}.pwconv2", d, 4 * d)
    vec(s, "detector.norm", 768)
    for head, n in [("kp", 63), ("scale", 1), ("pitch", 66), ("yaw", 66), ("roll", 66), ("t", 3), ("exp", 63)]:
        linear(s, f"detector.fc_{head}", n, 768)
    return s


def warping() -> Spec:
    s: Spec = {}
    k3 = (3, 3, 3)
    inf = 22 * 5  # (num_kp + 1) * (compress + 1)
    enc = [(inf, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]
    for i, (a, b) in enumerate(enc):
        p = f"dense_motion_network.hourglass.encoder.down_blocks.{i}"
        conv(s, f"{p}.conv", b, a, k3); bn(s, f"{p}.norm", b)
    dec = [(1024, 512), (1024, 256), (512, 128), (256, 64), (128, 32)]
    for i, (a, b) in enumerate(dec):
        p = f"dense_motion_network.hourglass.decoder.up_blocks.{i}"
        conv(s, f"{p}.conv", b, a, k3); bn(s, f"{p}.norm", b)
    out = 32 + inf
    conv(s, "dense_motion_network.hourglass.decoder.conv", out, out, k3)
    bn(s, "dense_motion_network.hourglass.decoder.norm", out)
    conv(s, "dense_motion_network.mask", 22, out, (7, 7, 7))
    conv(s, "dense_motion_network.compress", 4, 32, (1, 1, 1))
    bn(s, "dense_motion_network.norm", 4)
    conv(s, "dense_motion_network.occlusion", 1, out * 16, (7, 7))
    conv(s, "third.conv", 256, 512, (3, 3)); bn(s, "third.norm", 256)
    conv(s, "fourth", 256, 256, (1, 1))
    return s


def spade() -> Spec:
    s: Spec = {}
    conv(s, "fc", 512, 256, (3, 3))

    def block(name: str, fin: int, fout: int) -> None:
        mid = min(fin, fout)
        sn_conv(s, f"{name}.conv_0", mid, fin, 3); sn_conv(s, f"{name}.conv_1", fout, mid, 3)
        norms = [("norm_0", fin), ("norm_1", mid)]
        if fin != fout:
            sn_conv(s, f"{name}.conv_s", fout, fin, 1, bias=False)
            norms.append(("norm_s", fin))
        for norm, c in norms:
            conv(s, f"{name}.{norm}.mlp_shared.0", 128, 256, (3, 3))
            conv(s, f"{name}.{norm}.mlp_gamma", c, 128, (3, 3)); conv(s, f"{name}.{norm}.mlp_beta", c, 128, (3, 3))

    for i in range(6):
        block(f"G_middle_{i}", 512, 512)
    block("up_0", 512, 256)
    block("up_1", 256, 64)
    conv(s, "conv_img.0", 12, 64, (3, 3))
    return s


def mlp(sizes: list[int]) -> Spec:
    s: Spec = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        linear(s, f"mlp.{2 * i}", b, a)
    return s


def official() -> dict[str, Spec]:
    return {
        "appearance_feature_extractor": appearance(),
        "motion_extractor": motion(),
        "warping_module": warping(),
        "spade_generator": spade(),
        "stitching": mlp([126, 128, 128, 64, 65]),
        "lip": mlp([65, 128, 128, 64, 63]),
        "eye": mlp([66, 256, 256, 128, 128, 64, 63]),
    }
