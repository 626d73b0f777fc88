"""Faces, shared by ingest, training's loader, evaluation and the photo tool: detection and the
`Face` record, geometry and the one similarity fit, crops, paste-back, the face mesh and its
masks, the inner-face cut, identity encoders (with the shared face-mesh cache) and the
classical face swap."""
