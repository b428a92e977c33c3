"""The studio: a local web page to try looks, watch each stage arrive, compare tries, draw
masks, keep a look as a preset and render it at print size (``stylecascade studio``).

Needs the ``studio`` extra (FastAPI, uvicorn); nothing else imports this package, so neither
``import stylecascade`` nor the command line's start-up loads it. Modules: :mod:`.folder` (the
files the page may read and write), :mod:`.jobs` (the worker thread, its queue and events),
:mod:`.work` (tries and prints as render requests), :mod:`.app` (the web application),
:mod:`.server` (serving it).
"""
