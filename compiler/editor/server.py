"""`netspec lsp`: the language server, over stdio, built on pygls.

A thin layer: each request reads the `Document` of its file (the compiler's
check path, no torch) and translates what it finds into LSP types.
Diagnostics are published on open and on every change; a change is analysed
once the changes sent with it have arrived (`DEBOUNCE_S`), and the same text
is never analysed twice.  The variant analysed is the `netspec.variant`
setting (initializationOptions or workspace/didChangeConfiguration).
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import ServerTextPosition

from .completion import complete
from .diagnostics import to_lsp, to_range
from .document import Analysis, Document
from .hints import shape_hints
from .hover import block_text, hover_text, input_text, output_text
from .spans import word_at

# Changes sent together (a paste, a multi-cursor edit, a fast burst of keys)
# are analysed once, after the last: well below what a person notices.
DEBOUNCE_S = 0.01
ITEM_KIND = {"op": lsp.CompletionItemKind.Class, "block": lsp.CompletionItemKind.Module,
             "name": lsp.CompletionItemKind.Reference, "parameter": lsp.CompletionItemKind.Property,
             "key": lsp.CompletionItemKind.Keyword, "variable": lsp.CompletionItemKind.Variable}
SPEC_KEY = re.compile(r"^(nodes|inputs|blocks)\s*:", re.M)  # a top-level key only a spec has


class SpecServer(LanguageServer):
    def __init__(self):
        super().__init__("netspec", _version())
        self.documents: dict[str, Document] = {}
        self.variant: str | None = None

    def analysis(self, uri: str) -> tuple[Analysis, Document, list[str]]:
        """The analysis of the document's text as it is now."""
        text_doc = self.workspace.get_text_document(uri)
        doc = self.documents.get(uri)
        if doc is None:
            doc = self.documents[uri] = Document(text_doc.path or uri)
        text = text_doc.source
        return doc.analyze(text, self.variant), doc, text.split("\n")

    def publish(self, uri: str, version: int | None = None) -> None:
        if not looks_like_spec(self.workspace.get_text_document(uri).source):
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[], version=version))
            return
        analysis, doc, lines = self.analysis(uri)
        blocks = analysis.outline.blocks if analysis.outline else {}
        diagnostics = to_lsp(analysis.diagnostics, lines, uri, doc.file, blocks)
        text_doc = self.workspace.get_text_document(uri)
        for d in diagnostics:
            d.range = client_range(text_doc, d.range)
            for related in d.related_information or ():
                related.location.range = client_range(text_doc, related.location.range)
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    def set_variant(self, settings: Any) -> None:
        """`{"netspec": {"variant": "101"}}` or `{"variant": "101"}`."""
        if isinstance(settings, dict):
            inner = settings.get("netspec", settings)
            if isinstance(inner, dict) and "variant" in inner:
                value = inner["variant"]
                self.variant = str(value) if value not in (None, "") else None


def server_position(text_doc, position: lsp.Position) -> lsp.Position:
    """A client's position (UTF-16 units by default) in code points, as the text is indexed here."""
    found = text_doc.position_from_client_units(position)
    return lsp.Position(found.line, found.character)


def client_range(text_doc, found: lsp.Range) -> lsp.Range:
    """A range in code points in the client's units."""
    return lsp.Range(client_position(text_doc, found.start), client_position(text_doc, found.end))


def client_position(text_doc, position: lsp.Position) -> lsp.Position:
    return text_doc.position_to_client_units(ServerTextPosition(position.line, position.character))


def looks_like_spec(text: str) -> bool:
    """Whether a YAML file is a spec: a client that starts the server for
    every YAML file (a CI workflow, a compose file) gets no diagnostics for
    the others."""
    return "netspec.schema.json" in text or SPEC_KEY.search(text) is not None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("netspec")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def make_server() -> SpecServer:
    server = SpecServer()

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: SpecServer, params: lsp.InitializeParams) -> None:
        ls.set_variant(params.initialization_options)

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: SpecServer, params: lsp.DidChangeConfigurationParams) -> None:
        before = ls.variant
        ls.set_variant(params.settings)
        if ls.variant == before:
            return
        for uri in list(ls.documents):
            ls.publish(uri)
        capabilities = ls.client_capabilities.workspace
        if capabilities and capabilities.inlay_hint and capabilities.inlay_hint.refresh_support:
            ls.workspace_inlay_hint_refresh(None)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: SpecServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri, params.text_document.version)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: SpecServer, params: lsp.DidChangeTextDocumentParams) -> None:
        uri, version = params.text_document.uri, params.text_document.version
        await asyncio.sleep(DEBOUNCE_S)
        if ls.workspace.get_text_document(uri).version != version:
            return  # a later change arrived: its own call publishes
        ls.publish(uri, version)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SpecServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.documents.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: SpecServer, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis, doc, lines = ls.analysis(params.text_document.uri)
        shown, pos = doc.shown, server_position(ls.workspace.get_text_document(params.text_document.uri), params.position)
        here = analysis.outline or (shown.outline if shown else None)
        if shown is None or here is None:
            return None
        entry = here.entry_at(pos.line + 1)
        analysed = shown.outline.find(entry.scope, entry.name) if entry else None
        block = next((name for name, loc in here.blocks.items() if loc.line == pos.line + 1), None)
        given = next((name for name, loc in here.inputs.items() if loc.line == pos.line + 1), None)
        output = next((name for name, loc in here.outputs.items() if loc.line == pos.line + 1), None)
        if analysed is not None:
            word = word_at(lines[pos.line], pos.character) if pos.line < len(lines) else None
            text = hover_text(analysed, shown.outline, shown.index, word[0] if word else None)
        elif block is not None and block in shown.outline.blocks:  # a block's name where it is defined
            text = block_text(block, shown.outline, shown.index)
        elif given is not None:
            text = input_text(given, shown.index)
        elif output is not None:
            text = output_text(output, shown.index)
        else:
            return None
        if shown is not analysis:
            text += "\n\n*(from the last version that checked)*"
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: SpecServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        analysis, doc, lines = ls.analysis(params.text_document.uri)
        outline = analysis.outline
        if outline is None:
            return None
        text_doc = ls.workspace.get_text_document(params.text_document.uri)
        pos = server_position(text_doc, params.position)
        ref = outline.reference_at(pos.line + 1, pos.character + 1)
        target = outline.target(ref) if ref else None
        if target is None:
            return None
        return lsp.Location(params.text_document.uri, client_range(text_doc, to_range(target, lines)))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=[":", " ", "[", ",", "{", "$"]))
    def completion(ls: SpecServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        analysis, doc, lines = ls.analysis(params.text_document.uri)
        outline = analysis.outline or (doc.good.outline if doc.good else None)
        pos = server_position(ls.workspace.get_text_document(params.text_document.uri), params.position)
        items = complete(lines, pos.line, pos.character, outline)
        return lsp.CompletionList(is_incomplete=False, items=[lsp.CompletionItem(
            label=item.label, kind=ITEM_KIND[item.kind], detail=item.detail or None,
            documentation=lsp.MarkupContent(lsp.MarkupKind.Markdown, item.documentation) if item.documentation else None,
            insert_text=item.insert) for item in items])

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hints(ls: SpecServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        analysis, doc, lines = ls.analysis(params.text_document.uri)
        shown = doc.shown
        if analysis.outline is None or shown is None:
            return []
        first, last = params.range.start.line, params.range.end.line
        text_doc = ls.workspace.get_text_document(params.text_document.uri)
        return [lsp.InlayHint(position=client_position(text_doc, lsp.Position(h.line, h.col)), label=h.label,
                              kind=lsp.InlayHintKind.Type,
                              padding_left=True)
                for h in shape_hints(analysis.outline, shown.outline, shown.index) if first <= h.line <= last]

    return server


def serve() -> None:
    """Answer an editor on stdin and stdout until it says exit."""
    logging.basicConfig(level=logging.WARNING)
    make_server().start_io()
