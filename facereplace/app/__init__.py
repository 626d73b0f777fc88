"""`piq app`: the photo tool as a local web page (server.py: routes; session.py: the photos and
edits of one session; static/: the page, no CDN)."""
