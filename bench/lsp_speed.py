"""What a keystroke in specs/resnet.yaml costs the language server, beside
the plain check path (`analyze_text`: load the whole text, validate, expand,
check, shapes, counts), measured side by side in one run.

    python bench/lsp_speed.py [--repeat 5] [--variant 50]

Wall times on a machine shared with other work include waiting for a core;
the CPU times beside them (this process only) do not.

Each change types one character somewhere in the spec (the top-level nodes,
a block, the parameters) and the next change deletes it again; a character
typed into a name makes an error, as real typing does.  Per change:

- check path: `analyze_text` of the new text, what `netspec check` runs;
- editor: `Document.analyze` (sections that did not change are not read
  again; a text that loads to the same tree, as after typing in a comment,
  is not analysed again) with the diagnostics converted to LSP and the
  inlay hints;
- over stdio: a real `netspec lsp` process, from sending didChange to
  receiving its publishDiagnostics (includes the server's debounce).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import analyze_text  # noqa: E402
from compiler.errors import SpecError  # noqa: E402
from compiler.editor.document import Document  # noqa: E402
from compiler.editor.hints import shape_hints  # noqa: E402
from compiler.editor.diagnostics import to_lsp  # noqa: E402
from compiler.editor.server import DEBOUNCE_S  # noqa: E402

SPEC = ROOT / "specs" / "resnet.yaml"
# Where a character is typed, and the text it follows.
PLACES = {
    "top-level node": "fc: {op: linear, out_features: $num_classes",
    "node in a block": "conv3: {op: conv2d, out_channels: \"${4 * channels}\", kernel: 1",
    "parameters": "num_classes: 1000",
    "a comment": "# conv2_x: no stride",
}


def edits(text: str, after: str) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """Type '0' after `after`, then delete it: [(new text, (line, col, end line, end col), inserted)]."""
    offset = text.index(after) + len(after)
    line = text.count("\n", 0, offset)
    col = offset - (text.rfind("\n", 0, offset) + 1)
    typed = text[:offset] + "0" + text[offset:]
    return [(typed, (line, col, line, col), "0"), (text, (line, col, line, col + 1), "")]


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def check_path(new: str, variant: str) -> None:
    try:
        analyze_text(new, variant, str(SPEC))
    except SpecError:  # a character typed into a name: an error, as while typing
        pass


def editor(doc: Document, new: str, variant: str) -> None:
    analysis = doc.analyze(new, variant)
    lines = new.split("\n")
    blocks = analysis.outline.blocks if analysis.outline else {}
    to_lsp(analysis.diagnostics, lines, "file:///spec", doc.file, blocks)
    shape_hints(analysis.outline, doc.shown.outline, doc.shown.index)


def in_process(text: str, variant: str, repeat: int) -> dict[str, list[float]]:
    """Per place: median wall and CPU ms of the check path, then of the editor."""
    rows = {}
    doc = Document(str(SPEC))
    doc.analyze(text, variant)
    for label, after in PLACES.items():
        times: list[list[float]] = [[], [], [], []]
        for _ in range(repeat):
            for new, _, _ in edits(text, after):
                for k, run in enumerate((lambda: check_path(new, variant), lambda: editor(doc, new, variant))):
                    wall, cpu = time.perf_counter(), time.process_time()
                    run()
                    times[2 * k].append(time.perf_counter() - wall)
                    times[2 * k + 1].append(time.process_time() - cpu)
        rows[label] = [median_ms(t) for t in times]
    return rows


async def over_stdio(text: str, variant: str, repeat: int) -> dict[str, float]:
    client = LanguageClient("bench", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published.put_nowait((time.perf_counter(), params.version))

    await client.start_io(sys.executable, "-m", "compiler.cli", "lsp", cwd=str(ROOT))
    await client.initialize_async(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(), initialization_options={"netspec": {"variant": variant}}))
    client.initialized(lsp.InitializedParams())
    uri = SPEC.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "yaml", 1, text)))
    await published.get()
    version, rows = 1, {}
    for label, after in PLACES.items():
        times = []
        for _ in range(repeat):
            for _, (line, col, end_line, end_col), inserted in edits(text, after):
                version += 1
                start = time.perf_counter()
                client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                    lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    [lsp.TextDocumentContentChangePartial(
                        range=lsp.Range(lsp.Position(line, col), lsp.Position(end_line, end_col)), text=inserted)]))
                while True:
                    when, got = await published.get()
                    if got == version:
                        break
                times.append(when - start)
        rows[label] = median_ms(times)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--variant", default="50")
    args = parser.parse_args()
    text = SPEC.read_text()
    print(f"resnet.yaml, variant {args.variant}: median ms per change ({2 * args.repeat} changes each; "
          f"the server's debounce is {1000 * DEBOUNCE_S:.0f} ms); wall (cpu)")
    print(f"{'change in':16} {'check path':>15} {'editor':>15} {'check/editor':>13} {'over stdio':>11}")
    rows = in_process(text, args.variant, args.repeat)
    stdio = asyncio.run(over_stdio(text, args.variant, args.repeat))
    for label, (plain, plain_cpu, ours, ours_cpu) in rows.items():
        print(f"{label:16} {plain:7.1f} ({plain_cpu:5.1f}) {ours:7.1f} ({ours_cpu:5.1f}) {plain / ours:13.2f} "
              f"{stdio[label]:11.1f}")


if __name__ == "__main__":
    main()
