"""The photo tool: replace a face in a real photo with the same person's face from another,
seamlessly, and mark the result as edited (paper section 1, figure 9, B.4).

Public API (kept stable; `piq best-take` and `piq app` build on it):

- `photo_io.read_photo(path, max_pixels) -> Photo`, `photo_io.write_photo(photo, pixels, path, ...)`
- `faces.find_faces(image, params) -> list[Face]` (numbered left to right)
- `identity.IdentityMatcher`: the evaluation's identity encoder on found faces
- `target.find_target(photo, reference, params, ...) -> Target`: the face `piq replace` takes
  and REF's face, with no more detection and identity work than that choice needs
- `replace.replace_face(photo, faces, target_index, reference, reference_face, method, cfg) -> Result`
- `methods.build_method(name, params)`: `classical` (offline) or `piq` (the trained model)
- `provenance.mark(...)`, `provenance.verify(path)`: invisible watermark + IPTC/XMP record
"""
