"""What an editor needs: the JSON Schema of the spec language
(`json_schema.py`), and the language server over stdio (`server.py`, pygls)
with what it answers from: a document's analysis by the check path
(`document.py`, its YAML read again only where it changed: `sections.py`),
where things are written and what they became (`outline.py`, `spans.py`),
diagnostics, hovers, completions and shape hints (`diagnostics.py`,
`hover.py`, `completion.py`, `hints.py`).  Nothing here imports torch: a
keystroke is answered by the front half of the compiler alone.
"""
