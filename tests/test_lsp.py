"""`netspec lsp` driven as an editor drives it: pygls's LanguageClient starts
the real command (with torch unimportable) and speaks LSP over its stdin and
stdout: initialize, open resnet.yaml, edit it into errors and out again,
hover, go to definition, completion, inlay hints, a change of variant.

Run with -s to see the transcript of what the server answered."""
from __future__ import annotations

import asyncio
import sys

import pytest
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

from common import SPECS
from test_front_half_without_torch import BLOCKED, CLI

from compiler.editor.sections import SectionLoader, sections
from compiler.errors import SpecError
from compiler.frontend import load_text
from compiler.ops import OPS, public_ops

RESNET = SPECS / "resnet.yaml"
URI = RESNET.as_uri()
TEXT = RESNET.read_text()
LINES = TEXT.split("\n")
TIMEOUT = 20  # seconds for any one answer; the whole session takes a few


def line_of(text: str, start: int = 0) -> int:
    """The 0-based line holding `text` (the first at or after `start`)."""
    return next(i for i, line in enumerate(LINES) if i >= start and text in line)


def position(text: str, inside: str | None = None, start: int = 0) -> lsp.Position:
    """The position of `inside` (default: `text`) on the line holding `text`."""
    row = line_of(text, start)
    return lsp.Position(row, LINES[row].index(inside or text))


def utf16_position(before: str) -> lsp.Position:
    """The position after `before`, in UTF-16 code units as LSP counts by default."""
    line_start = before.rfind("\n") + 1
    return lsp.Position(before.count("\n"), len(before[line_start:].encode("utf-16-le")) // 2)


class Session:
    """One server process and what it published."""

    def __init__(self, client: LanguageClient):
        self.client = client
        self.published: asyncio.Queue = asyncio.Queue()
        self.version = 1
        self.transcript: list[str] = []

    async def diagnostics(self, version: int | None = None) -> list[lsp.Diagnostic]:
        """The next diagnostics published (for `version`, if given)."""
        while True:
            params = await asyncio.wait_for(self.published.get(), TIMEOUT)
            if version is None or params.version == version:
                return list(params.diagnostics)

    async def change(self, old: str, new: str) -> list[lsp.Diagnostic]:
        """Replace the first `old` by `new` as an editor does (one incremental
        change with its range), and wait for the diagnostics of that version."""
        current = "\n".join(self.lines)
        offset = current.index(old)
        start, end = utf16_position(current[:offset]), utf16_position(current[:offset + len(old)])
        self.lines = (current[:offset] + new + current[offset + len(old):]).split("\n")
        self.version += 1
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=URI, version=self.version),
            content_changes=[lsp.TextDocumentContentChangePartial(
                range=lsp.Range(start, end), text=new)]))
        return await self.diagnostics(self.version)

    async def hover(self, at: lsp.Position) -> str:
        found = await asyncio.wait_for(self.client.text_document_hover_async(
            lsp.HoverParams(lsp.TextDocumentIdentifier(URI), at)), TIMEOUT)
        return found.contents.value if found else ""

    def note(self, title: str, body: str) -> None:
        self.transcript.append(f"--- {title}\n{body}")


async def _start() -> Session:
    """A server started by a client, resnet.yaml opened (made inside the
    event loop that runs the sessions, which its queue belongs to)."""
    client = LanguageClient("netspec-test", "1")
    session = Session(client)

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: lsp.PublishDiagnosticsParams) -> None:
        session.published.put_nowait(params)

    await client.start_io(sys.executable, "-c", BLOCKED + CLI, "lsp")
    try:
        await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), initialization_options={"netspec": {"variant": "18"}})), TIMEOUT)
        client.initialized(lsp.InitializedParams())
        session.lines = list(LINES)
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=URI, language_id="yaml", version=1, text=TEXT)))
        session.opened = await session.diagnostics(1)
    except BaseException:
        await _stop(session)
        raise
    return session


async def _stop(session: Session) -> None:
    try:
        await asyncio.wait_for(session.client.shutdown_async(None), TIMEOUT)
    finally:
        session.client.exit(None)  # also after a failure, so the process ends and stop() returns
        await asyncio.wait_for(session.client.stop(), TIMEOUT)


@pytest.fixture(scope="module")
def server():
    """One server process for the file's sessions (starting one is most of
    their time); each session leaves the text and the variant as it found them."""
    loop = asyncio.new_event_loop()
    try:
        session = loop.run_until_complete(_start())
        yield loop, session
        loop.run_until_complete(_stop(session))
    finally:
        loop.close()


def run_session(server, work) -> Session:
    loop, session = server
    session.transcript = []
    try:
        loop.run_until_complete(asyncio.wait_for(work(session), 4 * TIMEOUT))
    finally:
        print("\n".join(session.transcript))
        if session.lines != LINES:  # a failed session left its edits: the next starts from the file again
            loop.run_until_complete(session.change("\n".join(session.lines), TEXT))
    return session


def test_diagnostics_appear_at_their_range_and_clear(server):
    async def work(s: Session):
        assert s.opened == []  # resnet.yaml checks

        # A misspelt parameter of the last layer: underlined exactly.
        found = await s.change("fc: {op: linear, out_features:", "fc: {op: linear, out_featurez:")
        s.note("diagnostic: misspelt parameter", "\n".join(f"{d.range} {d.message}" for d in found))
        assert len(found) == 1
        (d,) = found
        start = position("fc: {op: linear", "out_features")
        assert d.range == lsp.Range(start, lsp.Position(start.line, start.character + len("out_featurez")))
        assert d.severity == lsp.DiagnosticSeverity.Error and "out_featurez" in d.message
        assert "out_features" in d.message.split("hint:")[1]  # did you mean

        # Out again: the diagnostics clear.
        assert await s.change("out_featurez:", "out_features:") == []

        # A warning: a node no output needs.
        found = await s.change("out_features: $num_classes}\n", "out_features: $num_classes}\n  extra: {op: relu}\n")
        s.note("diagnostic: a warning", "\n".join(f"{d.range} {d.message}" for d in found))
        assert [(d.severity, d.range.start, d.range.end.character) for d in found] == [
            (lsp.DiagnosticSeverity.Warning, lsp.Position(line_of("  fc: {op: linear") + 1, 2), 7)]
        assert "unused" in found[0].message
        assert await s.change("  extra: {op: relu}\n", "") == []

        # Columns are in the client's units (UTF-16 by default): an emoji before counts two.
        found = await s.change("fc: {op: linear, out_features:", 'fc: {op: linear, doc: "\U0001F600", out_featurez:')
        assert len(found) == 1
        row = line_of("fc: {op: linear")
        assert found[0].range.start == lsp.Position(row, s.lines[row].index("out_featurez") + 1)
        assert await s.change('doc: "\U0001F600", out_featurez:', "out_features:") == []

        # A shape error inside a block: the expansion chain as related information.
        found = await s.change("conv2: {op: conv2d, out_channels: $channels, kernel: 3, padding: 1, bias: false}",
                               "conv2: {op: conv2d, out_channels: $channels, kernel: 3, padding: 0, bias: false}")
        s.note("diagnostic: shape error in a block", "\n".join(
            f"{d.range} {d.message}\n" + "\n".join(f"  related {r.location.range}: {r.message}"
                                                     for r in d.related_information or []) for d in found))
        assert found, "a 3x3 convolution without padding shrinks the residual branch"
        add = found[0]
        assert add.range.start == position("      add: {op: add, in: [bn2", "add", line_of("  basic:"))
        assert "layer1.0.add" in add.message and "[N, 64, 54, 54]" in add.message
        related = {(r.location.range.start.line, r.message) for r in add.related_information}
        assert (line_of("  layer1:"), "repeat 0 of instance 'layer1.0' of block 'basic'") in related
        assert (line_of("  basic:"), "block 'basic' is defined here") in related
        assert await s.change("padding: 0, bias: false}", "padding: 1, bias: false}") == []

        # A misspelt parameter in a block is found in each of its 8 instances: one diagnostic says so.
        found = await s.change("conv1: {op: conv2d, out_channels: $channels, kernel: 3",
                               "conv1: {op: conv2d, out_channels: $channels, kernal: 3")
        s.note("diagnostic: the same problem in every instance of a block", "\n".join(
            f"{d.range} {d.message}\n" + "\n".join(f"  related {r.location.range}: {r.message}"
                                                     for r in d.related_information or []) for d in found))
        assert len(found) == 1
        assert found[0].message.startswith("nodes 'layer1.0.conv1', 'layer1.1.conv1' and 6 more (conv2d): ")
        instances = [r.message for r in found[0].related_information if "instance" in r.message]
        assert len(instances) == 8 and instances[-1] == "repeat 1 of instance 'layer4.1' of block 'basic'"
        assert await s.change("kernal: 3", "kernel: 3") == []

        # A YAML error mid-typing: a diagnostic, and the server keeps answering.
        found = await s.change("bn1: {op: batchnorm2d}\n  relu", "bn1: {op: batchnorm2d\n  relu")
        s.note("diagnostic: YAML syntax error", "\n".join(f"{d.range} {d.message}" for d in found))
        assert len(found) == 1 and found[0].message.startswith("not valid YAML")
        text = await s.hover(position("  conv1: {op: conv2d, out_channels: 64"))
        assert "[N, 64, 112, 112]" in text and "last version that checked" in text
        assert await s.change("bn1: {op: batchnorm2d\n", "bn1: {op: batchnorm2d}\n") == []

        # A YAML file that is not a spec (a client may start the server for every YAML file): no diagnostics.
        s.client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
            uri="file:///tmp/workflow.yml", language_id="yaml", version=1, text="on: push\njobs: {}\n")))
        assert await s.diagnostics(1) == []

    session = run_session(server, work)
    assert len(session.transcript) == 5


NOT_INSTALLED = """
import sys

class NotInstalled:  # as Python says a package is missing
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pygls":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
"""


def test_without_pygls_the_command_says_what_to_install():
    import subprocess
    done = subprocess.run([sys.executable, "-c", NOT_INSTALLED + CLI[len(BLOCKED):], "lsp"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stderr.startswith("netspec lsp: error: the language server needs pygls")
    assert "pip install 'netspec[editor]'" in done.stderr and "Traceback" not in done.stderr


def test_hover_definition_completion_hints_and_variant(server):
    async def work(s: Session):
        client = s.client

        text = await s.hover(position("  conv1: {op: conv2d, out_channels: 64"))
        s.note("hover: conv1 (variant 18)", text)
        # 7x7x3 weights for each of 64 channels, at 112x112 positions per sample
        assert "`conv2d`" in text and "output `[N, 64, 112, 112]`" in text
        assert f"{7 * 7 * 3 * 64:,} parameters" in text and f"{7 * 7 * 3 * 64 * 112 * 112:,} multiply-adds" in text
        assert "| kernel | 7 |" in text and "| stride | 2 |" in text

        text = await s.hover(position("  layer2: {block: $unit"))
        s.note("hover: layer2 (variant 18)", text)
        assert "block `basic`" in text and "2 instances in variant 18" in text
        assert "`layer2.0` → `[N, 128, 28, 28]`" in text and "channels=128, stride=2, project=true" in text
        assert "`channels` (required)" in text

        text = await s.hover(position("  image: {shape:", "image"))
        assert text == "input **image**: `[N, 3, 224, 224]` float32\n\nread by `conv1`"
        text = await s.hover(position("  logits: fc", "logits"))
        assert text == "output **logits** = `fc`: `[N, 1000]` float32"

        text = await s.hover(position("  projection:", "projection"))
        s.note("hover: block 'projection' where it is defined (variant 18)", text)
        assert text.startswith("block **projection**, the shortcut where the shape changes")
        assert "3 instances in variant 18" in text and "`layer4.0.downsample` → `[N, 512, 7, 7]`" in text

        found = await asyncio.wait_for(client.text_document_definition_async(lsp.DefinitionParams(
            lsp.TextDocumentIdentifier(URI), position("add: {op: add, in: [bn2", "bn2")), ), TIMEOUT)
        s.note("definition: 'bn2' in basic's add", f"{found.uri} {found.range}")
        assert found.uri == URI and found.range.start == position("      bn2: {op: batchnorm2d}", "bn2")
        assert found.range.end.character == found.range.start.character + 3
        found = await asyncio.wait_for(client.text_document_definition_async(lsp.DefinitionParams(
            lsp.TextDocumentIdentifier(URI), position("downsample: {block: projection", "projection"))), TIMEOUT)
        s.note("definition: block 'projection'", f"{found.uri} {found.range}")
        assert found.range.start == position("  projection:", "projection")

        async def labels(at: lsp.Position) -> dict[str, lsp.CompletionItem]:
            got = await asyncio.wait_for(client.text_document_completion_async(
                lsp.CompletionParams(lsp.TextDocumentIdentifier(URI), at)), TIMEOUT)
            return {item.label: item for item in got.items}

        at = position("  conv1: {op: conv2d, out_channels: 64", "conv2d")
        assert set(await labels(at)) == set(public_ops())
        at = position("  conv1: {op: conv2d, out_channels: 64", " out_channels")
        items = await labels(at)
        assert items["dilation"].documentation.value == OPS["conv2d"].Params.model_fields["dilation"].description
        assert "kernel" not in items and "in" in items  # kernel is given already
        at = position("add: {op: add, in: [bn2", "bn2")
        assert {"x", "conv1", "bn1", "relu1", "conv2", "bn2", "downsample"} <= set(await labels(at))
        at = position("downsample: {block: projection", "projection")
        assert set(await labels(at)) == {"projection", "basic", "bottleneck"}
        at = position("downsample: {block: projection", " channels")  # keys not given yet, and not 'op'
        got = set(await labels(at))
        assert {"repeat", "overrides", "doc"} <= got and not {"channels", "stride", "op", "block", "in"} & got

        hints = await asyncio.wait_for(client.text_document_inlay_hint_async(lsp.InlayHintParams(
            lsp.TextDocumentIdentifier(URI), lsp.Range(lsp.Position(0, 0), lsp.Position(len(LINES), 0)))), TIMEOUT)
        by_line = {h.position.line: h.label for h in hints}
        s.note("inlay hints", "\n".join(f"{LINES[k].strip()[:40]:40}  {v}" for k, v in sorted(by_line.items())))
        assert by_line[line_of("  conv1: {op: conv2d, out_channels: 64")] == "[N, 64, 112, 112]"
        assert by_line[line_of("overrides", line_of("  layer4:"))] == "[N, 512, 7, 7]"
        assert by_line[line_of("conv1: {op: conv2d", line_of("  basic:"))] == "[N, 64|128|256|512, 56|28|14|7, 56|28|14|7]"

        # The setting changes: the spec is analysed again in that variant.
        client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams({"netspec": {"variant": "50"}}))
        assert await s.diagnostics() == []
        text = await s.hover(position("  layer2: {block: $unit"))
        s.note("hover: layer2 (variant 50)", text)
        assert "block `bottleneck`" in text and "4 instances in variant 50" in text
        assert "`layer2.0` → `[N, 512, 28, 28]`" in text

        # A spec without that variant is shown in its default, and says so where its variants are.
        vgg = SPECS / "vgg.yaml"
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
            uri=vgg.as_uri(), language_id="yaml", version=1, text=vgg.read_text())))
        (note,) = await s.diagnostics(1)
        assert note.severity == lsp.DiagnosticSeverity.Information and "no variant '50'" in note.message
        assert note.range.start == lsp.Position(vgg.read_text().split("\n").index("variants:"), 0)
        client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(vgg.as_uri())))
        assert await s.diagnostics() == []  # closing clears them

        client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams({"netspec": {"variant": "18"}}))
        assert await s.diagnostics() == []

    run_session(server, work)


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_sections_load_as_the_whole_file(spec):
    """The editor loads a spec one top-level section, or one entry of it, at
    a time: the tree, and every position in it, are those of loading the
    file whole; after an edit only the entry edited is read again."""
    text = spec.read_text()
    assert sections(text) is not None  # the zoo is read in pieces, not all at once
    loader = SectionLoader(str(spec))
    assert _located(loader.load(text)) == _located(load_text(text, str(spec)))
    lines = text.split("\n")
    first_node = lines.index("nodes:") + 1 + next(
        i for i, line in enumerate(lines[lines.index("nodes:") + 1:]) if line.strip()[:1] not in ("", "#"))
    lines[first_node] += "  # a comment typed"
    edited = "\n".join(lines)
    assert _located(loader.load(edited)) == _located(load_text(edited, str(spec)))
    assert loader.reloaded == 1


TRICKY = {
    "flow mapping continued at the entry's indentation": "name: a\nnodes:\n  a: {op: relu,\n  in: x}\n",
    "a node given twice, in two entries": "name: a\nnodes:\n  a: {op: relu}\n  a: {op: relu}\n",
    "a top-level key given twice": "name: a\nnodes:\n  a: {op: relu}\nname: b\n",
    "an anchor and its alias in two sections": "name: a\nparams: {w: &w 3}\nnodes:\n  a: {op: relu, k: *w}\n",
    "a list under a key": "name: a\ninputs:\n  - x\n  - y\n",
    "entries less indented than the first": "name: a\nnodes:\n    a: {op: relu}\n  b: {op: relu}\n",
    "a comment on the key's line and between entries": "name: a\nnodes:  # the layers\n  a: {op: relu}\n# c\n  b: 1\n",
    "a block-style entry": "name: a\nnodes:\n  a:\n    op: relu\n\n    in: x\n  b: {op: relu}\n",
    "a YAML error in one entry": "name: a\nnodes:\n  a: {op: relu\n  b: {op: relu}\n",
    "a key with no value, then an entry": "name: a\nblocks:\nnodes:\n  a: {op: relu}\n",
    "a block's nodes": "name: a\nblocks:\n  b:\n    nodes:\n      x: {op: relu}\n\n      y: {op: relu}\nnodes:\n  a: {block: b}\n",
    "a list inside a block": "name: a\nblocks:\n  b:\n    inputs:\n      - x\n    nodes:\n      x1: {op: relu}\n",
    "a block's node given twice": "name: a\nblocks:\n  b:\n    nodes:\n      x: {op: relu}\n      x: {op: relu}\n",
    "numbers as keys": "name: a\nvariants:\n  50: {}\n  18:\n    a: 1\n",
    "a multi-line value under a key": "name: a\ndescription:\n  one line,\n  and another\n",
}


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_sections_load_tricky_texts_as_the_whole_file(text):
    """The same tree at the same positions, or the same error, as loading whole."""
    try:
        whole = _located(load_text(text, "t.yaml"))
    except SpecError as e:
        with pytest.raises(SpecError) as raised:
            SectionLoader("t.yaml").load(text)
        assert raised.value.format() == e.format()
    else:
        assert _located(SectionLoader("t.yaml").load(text)) == whole


def _located(value):
    """A loaded tree with every position written out, to compare two."""
    if isinstance(value, dict):
        return (value.loc, [(k, value.key_locs[k], value.value_locs[k], _located(v)) for k, v in value.items()])
    if isinstance(value, list):
        return (value.loc, value.item_locs, [_located(v) for v in value])
    return value


def test_every_cut_of_a_spec_is_answered():
    """resnet.yaml with 23 characters cut out at every 193rd: each text gives
    diagnostics or a graph (never an exception), and hover, completion and
    hints answer, from the last text that checked while this one does not."""
    from compiler.editor.completion import complete
    from compiler.editor.document import Document
    from compiler.editor.hints import shape_hints
    from compiler.editor.hover import hover_text

    doc = Document(str(RESNET))
    assert doc.analyze(TEXT, "18").graph is not None
    broken_but_answered = 0
    for start in range(0, len(TEXT), 193):
        text = TEXT[:start] + TEXT[start + 23:]
        analysis = doc.analyze(text, "18")
        assert analysis.graph is not None or analysis.diagnostics, start
        lines = text.split("\n")
        row = text.count("\n", 0, start)
        complete(lines, row, start - (text.rfind("\n", 0, start) + 1), analysis.outline)
        shown = doc.shown
        here = analysis.outline or shown.outline
        shape_hints(here, shown.outline, shown.index)
        entry = here.entry_at(row + 1)
        found = shown.outline.find(entry.scope, entry.name) if entry else None
        if found is not None:
            assert hover_text(found, shown.outline, shown.index).startswith(f"**{found.name}**")
            broken_but_answered += analysis.graph is None
    assert broken_but_answered > 5
