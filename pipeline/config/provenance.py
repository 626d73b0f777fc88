"""`provenance` section: C2PA content credentials on the photo tool's outputs (issue 26).

`certificate` / `private_key` null: the outputs carry the invisible mark and the XMP record but
no content credentials (`piq` says so on stderr); `piq provenance init --dir DIR` makes a local
pair and prints the two lines to set. Once named, a missing, expired or mismatched pair is
refused before anything is written.
"""
from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class ProvenanceParams:
    certificate: str | None = None       # PEM chain: the signing certificate first, then its issuers
    private_key: str | None = None       # PEM (PKCS#8) private key of the signing certificate
    algorithm: Literal["es256", "es384", "es512", "ps256", "ed25519"] = "es256"   # must fit the key
    timestamp_url: str | None = None     # RFC 3161 time-stamp authority (offline: none)

    def validate(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("provenance.certificate and provenance.private_key are set together (or both null)")
