"""specs/googlenet.yaml: Table 1 of Szegedy et al. (2014) and torchvision's
googlenet, main and auxiliary outputs."""
from __future__ import annotations

import pytest
import torch
import torchvision

from compiler.api import SpecError, analyze_file, compile_file, compile_text
from compiler.cli import main
from compiler.tools.report import block_rows
from compiler.tools.verify import randomize_norms, verify

from common import SPECS

SPEC = SPECS / "googlenet.yaml"

# Table 1 as printed: row -> (params in K = 1024, ops in M = 10^6).
PAPER = {
    "conv1": (2.7, 34), "conv2": (112, 360),
    "inception3a": (159, 128), "inception3b": (380, 304),
    "inception4a": (364, 73), "inception4b": (437, 88), "inception4c": (463, 100),
    "inception4d": (580, 119), "inception4e": (840, 170),
    "inception5a": (1072, 54), "inception5b": (1388, 71),
    "fc": (1000, 1),
}
# Table 1's sizes: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; the
# input channels and output size of each inception row.
SIZES = {
    "inception3a": (192, 28, [64, 96, 128, 16, 32, 32]),
    "inception3b": (256, 28, [128, 128, 192, 32, 96, 64]),
    "inception4a": (480, 14, [192, 96, 208, 16, 48, 64]),
    "inception4b": (512, 14, [160, 112, 224, 24, 64, 64]),
    "inception4c": (512, 14, [128, 128, 256, 24, 64, 64]),
    "inception4d": (512, 14, [112, 144, 288, 32, 64, 64]),
    "inception4e": (528, 14, [256, 160, 320, 32, 128, 128]),
    "inception5a": (832, 7, [256, 160, 320, 32, 128, 128]),
    "inception5b": (832, 7, [384, 192, 384, 48, 128, 128]),
}
# Where the paper's own numbers disagree with its layer sizes by more than
# its rounding (one unit of the printed digit); docs/branching.md explains.
PARAMS_DISAGREE = {"conv1", "inception4a", "inception4c", "inception4d", "inception4e",
                   "inception5a", "inception5b"}
OPS_DISAGREE = {"conv1", "inception5a"}


def table1() -> dict[str, dict]:
    graph = analyze_file(SPEC, "paper", outputs=["logits"])
    return {row["name"]: row for row in block_rows(graph, weights_only=True)}


def inception_weights(cin: int, s: list[int]) -> int:
    """Weights of one inception module from its Table 1 row (the oracle)."""
    n1, r3, n3, r5, n5, pp = s
    return cin * n1 + cin * r3 + r3 * n3 * 9 + cin * r5 + r5 * n5 * 25 + cin * pp


def test_inception_rows_equal_their_layer_sizes():
    rows = table1()
    for name, (cin, size, sizes) in SIZES.items():
        weights = inception_weights(cin, sizes)
        assert rows[name]["params"] == weights, name
        assert rows[name]["macs"] == weights * size * size, name
        assert rows[name]["output_shape"][1] == sizes[0] + sizes[2] + sizes[4] + sizes[5]
    # The notes work 3a out as 163,328 weights: 159.5K.
    assert rows["inception3a"]["params"] == 163_328


def test_table1_agrees_with_the_paper_to_its_rounding():
    rows = table1()
    for name, (paper_k, paper_m) in PAPER.items():
        ours_k, ours_m = rows[name]["params"] / 1024, rows[name]["macs"] / 1e6
        assert (abs(ours_k - paper_k) <= 1) == (name not in PARAMS_DISAGREE), (name, ours_k, paper_k)
        assert (abs(ours_m - paper_m) <= 1) == (name not in OPS_DISAGREE), (name, ours_m, paper_m)


def test_table1_disagreements_are_the_papers():
    # Our value beside the paper's for each row where they differ; every one
    # of ours follows from the layer sizes above (see the test before).
    rows = table1()
    ours = {name: (round(rows[name]["params"] / 1024, 1), round(rows[name]["macs"] / 1e6, 1)) for name in PAPER}
    for name in PARAMS_DISAGREE:
        assert abs(ours[name][0] - PAPER[name][0]) > 1
    # 5a's 54M is its printed 1072K weights times 7x7 positions (53.8M): the
    # ops follow the paper's params, which its sizes (1018K) do not give.
    assert round(PAPER["inception5a"][0] * 1024 * 49 / 1e6) == PAPER["inception5a"][1]
    assert ours["inception5a"][1] < PAPER["inception5a"][1] - 2
    assert ours["conv1"] == (round(7 * 7 * 3 * 64 / 1024, 1), round(7 * 7 * 3 * 64 * 112 * 112 / 1e6, 1))


def test_table1_command_prints_the_rows(capsys):
    assert main(["summary", str(SPEC), "--outputs", "logits", "--by", "block", "--weights-only",
                 "--units", "paper"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("inception3a"))
    assert line.split()[-2:] == ["159.5K", "128.0M"]
    assert next(l for l in out.splitlines() if l.startswith("fc ")).split()[-2:] == ["1,000.0K", "1.0M"]


def test_paper_variant_layers():
    graph = analyze_file(SPEC, "paper")
    ops = [n.op for n in graph.nodes.values()]
    assert "batchnorm2d" not in ops
    assert ops.count("local_response_norm") == 2
    assert graph.nodes["inception3a.branch3.conv"].attrs.kernel == 5
    assert graph.nodes["dropout"].attrs.p == 0.4
    assert all(n.attrs.bias for n in graph.nodes.values() if n.op == "conv2d")
    assert list(graph.outputs) == ["logits", "aux1", "aux2"]
    # Sec. 5: 5x5/3 average pooling gives 4x4x512 on 4a and 4x4x528 on 4d.
    assert graph.nodes["aux1.pool"].out.shape[1:] == (512, 4, 4)
    assert graph.nodes["aux2.pool"].out.shape[1:] == (528, 4, 4)


def test_outputs_choice_drops_the_auxiliary_heads():
    full = compile_file(SPEC, "torchvision")
    main_only = compile_file(SPEC, "torchvision", outputs=["logits"])
    n = lambda m: sum(p.numel() for p in m.module.parameters())  # noqa: E731
    assert n(full) == sum(p.numel() for p in torchvision.models.googlenet(
        weights=None, aux_logits=True, init_weights=False).parameters())
    assert n(main_only) == sum(p.numel() for p in torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=False).parameters())
    assert list(main_only.outputs) == ["logits"]
    assert not any(name.startswith("aux") for name in main_only.graph.nodes)


def test_unknown_output_is_one_line_error(capsys):
    assert main(["check", str(SPEC), "--outputs", "logits,aux3"]) == 2
    err = capsys.readouterr().err
    assert "unknown output 'aux3'" in err and "logits, aux1, aux2" in err


def test_verify_against_torchvision():
    model = compile_file(SPEC, "torchvision", outputs=["logits"])
    reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                             transform_input=False)
    randomize_norms(reference)
    result = verify(model, "torchvision:googlenet", reference=reference)
    assert result.ok and result.max_rel < 1e-5, result.as_dict()


def test_auxiliary_heads_equal_torchvisions():
    ours = compile_file(SPEC, "torchvision")
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False,
                                             transform_input=False)
    randomize_norms(reference)
    # torchvision registers aux1, aux2 before fc; ours computes fc first.
    theirs = reference.state_dict()
    order = [k for k in theirs if not k.startswith(("aux", "fc."))] + \
        [k for k in theirs if k.startswith("fc.")] + [k for k in theirs if k.startswith("aux")]
    mine = ours.module.state_dict()
    assert len(order) == len(mine)
    ours.module.load_state_dict({mk: theirs[tk] for mk, tk in zip(mine, order)})

    features = {}
    reference.inception4a.register_forward_hook(lambda m, i, o: features.__setitem__("4a", o))
    reference.inception4d.register_forward_hook(lambda m, i, o: features.__setitem__("4d", o))
    reference.eval()
    ours.module.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, aux1, aux2 = ours.module(x)
        expected = reference(x)
        expected_aux1, expected_aux2 = reference.aux1(features["4a"]), reference.aux2(features["4d"])
    for got, want in ((logits, expected), (aux1, expected_aux1), (aux2, expected_aux2)):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_compile_with_outputs_stores_only_those(tmp_path):
    from compiler.tools.artifact import load_version
    assert main(["compile", str(SPEC), "--variant", "torchvision", "--outputs", "logits",
                 "--repository", str(tmp_path), "--quiet"]) == 0
    config = (tmp_path / "googlenet" / "config.pbtxt").read_text()
    assert 'name: "logits"' in config and "aux1" not in config
    stored = load_version(tmp_path / "googlenet" / "1")
    assert list(stored.outputs) == ["logits"]
    assert sum(p.numel() for p in stored.module.parameters()) == 6_624_904  # torchvision, aux_logits=False


def test_verify_compares_every_output_against_the_reference_with_aux_heads():
    # verify builds torchvision's googlenet with aux_logits=True and compares
    # logits, aux1 and aux2 (its aux_logits1 and aux_logits2).
    result = verify(compile_file(SPEC, "torchvision"), "torchvision:googlenet")
    assert result.ok and result.matched_by == "order by module", result.as_dict()
    assert list(result.outputs) == ["logits", "aux1", "aux2"]
    assert max(result.outputs.values()) < 1e-5
    # A head on the wrong module keeps every weight's shape (4a and 4b are
    # both 512 wide): only its own output tells.
    text = SPEC.read_text().replace("aux1: {block: aux_head, in: inception4a", "aux1: {block: aux_head, in: inception4b")
    assert text != SPEC.read_text()
    moved = verify(compile_text(text, "torchvision", file=str(SPEC)), "torchvision:googlenet")
    assert not moved.ok and moved.outputs["aux1"] > 1e-2, moved.as_dict()
    assert moved.outputs["logits"] < 1e-5 and moved.outputs["aux2"] < 1e-5


def test_a_tensor_count_mismatch_names_the_first_tensors_that_differ():
    # Two of three outputs against a reference built with both heads.
    with pytest.raises(SpecError) as e:
        verify(compile_file(SPEC, "torchvision", outputs=["logits", "aux1"]), "torchvision:googlenet")
    assert str(e.value).splitlines()[0] == (
        "error: the reference has 364 tensors and the spec 354: they cannot be matched; the first to differ in "
        "order: reference 'aux1.conv.conv.weight' [128, 512, 1, 1] vs ours 'fc.weight' [1000, 1024] (tensor 342)")
