"""What an editor needs: the JSON Schema of the spec language
(`json_schema.py`), the analysis of a document being edited with every
position a client asks about (`document.py`), and the language server over
stdio (`server.py`, pygls).  Nothing here imports torch: a keystroke is
answered by the front half of the compiler alone.
"""
