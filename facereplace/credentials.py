"""C2PA content credentials on the photo tool's outputs (issue 26, item 4), with c2pa-python,
the Content Authenticity Initiative's binding (its native library ships in the wheel).

Every image `piq replace`, `piq best-take` and `piq app` write carries a manifest signed with
the certificate and key named in params (`provenance.*`):
- one `c2pa.actions.v2` assertion: `c2pa.opened` (the photo, the `parentOf` ingredient),
  `c2pa.placed` (each REF, a `componentOf` ingredient), then `c2pa.edited` with the IPTC digital
  source type of the method (`compositeCapture`: captured photos combined by the classical
  method; `compositeWithTrainedAlgorithmicMedia`: the trained model made the new face) and the
  tool as its software agent;
- a photo that already carries credentials keeps them: c2pa adds its manifest store to the
  parent ingredient, so the history reads on.

`load_signer` checks the pair before any work: a missing file, a certificate outside its
validity, or a key that is not the certificate's is a `Reject`, and nothing is written.
`read_credentials` reads and validates a file's manifest with c2pa's Reader (`piq verify`).

The pair `piq provenance init` makes is local: a self-signed root and a signing certificate it
issued. A reader validates the signature and the hashes with it ("Valid"), but cannot tie the
signer to anyone it trusts ("Trusted" needs a certificate from an authority on the C2PA trust
list, or the reader told to trust this root).
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import json
from pathlib import Path
from typing import Sequence

from pipeline.config.provenance import ProvenanceParams
from pipeline.rejection import Reject

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPES = {"classical": IPTC + "compositeCapture", "piq": IPTC + "compositeWithTrainedAlgorithmicMedia"}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
DATA_CHANGED = ("assertion.dataHash.mismatch", "assertion.boxesHash.mismatch", "assertion.bmffHash.mismatch")


def digital_source_type(method: str) -> str:
    """The IPTC digital source type of an output made by `method`."""
    return SOURCE_TYPES.get(method, IPTC + "compositeWithTrainedAlgorithmicMedia")


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A checked signing pair: the PEM chain and key, and whose it is."""

    chain: bytes
    key: bytes
    algorithm: str
    subject: str
    timestamp_url: str | None = None

    def signer(self):
        import c2pa

        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.algorithm.encode(), self.chain, self.key,
                                                         self.timestamp_url.encode() if self.timestamp_url else None))


def load_signer(p: ProvenanceParams, now: datetime.datetime | None = None) -> Credentials | None:
    """The pair named in params, checked; None where params name none. `Reject` for a
    missing or unreadable file, a certificate not valid now, or a key that is not its key."""
    if p.certificate is None:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    files = {}
    for what, path in (("certificate", p.certificate), ("private key", p.private_key)):
        try:
            files[what] = Path(path).read_bytes()
        except OSError as err:
            raise Reject("no_certificate", f"provenance.{what.replace(' ', '_')} {path}: {err.strerror or err} "
                                           f"(`piq provenance init --dir DIR` makes a local pair)") from err
    try:
        chain = x509.load_pem_x509_certificates(files["certificate"])
    except ValueError as err:
        raise Reject("bad_certificate", f"{p.certificate} holds no PEM certificate ({err})") from err
    try:
        key = serialization.load_pem_private_key(files["private key"], password=None)
    except (ValueError, TypeError) as err:
        raise Reject("bad_certificate", f"{p.private_key} holds no unencrypted PEM private key ({err})") from err
    cert = chain[0]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Reject("certificate_expired", f"{p.certificate}: the certificate is valid from "
                                            f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}, "
                                            f"not now ({now:%Y-%m-%d}); nothing was written")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, pub)
            != cert.public_key().public_bytes(serialization.Encoding.DER, pub)):
        raise Reject("key_mismatch", f"{p.private_key} is not the key of the certificate {p.certificate}; "
                                     f"nothing was written")
    return Credentials(files["certificate"], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()),
                       p.algorithm, cert.subject.rfc4514_string(), p.timestamp_url)


@dataclasses.dataclass(frozen=True)
class Ingredient:
    """An input of the edit: its file name, format and bytes."""

    title: str
    format: str          # JPEG | PNG
    data: bytes


def tool_version() -> str:
    """The installed piqperfect's version (the manifest's claim generator)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("piqperfect")
    except PackageNotFoundError:
        return "unknown"


def manifest(title: str, method: str, tool: str, refs: Sequence[Ingredient], record: dict | None) -> dict:
    """The manifest definition (before c2pa adds hashes, thumbnails and the signature)."""
    actions = [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["photo"]}}]
    actions += [{"action": "c2pa.placed", "parameters": {"ingredientIds": [f"reference{i}"]}} for i in range(len(refs))]
    actions.append({"action": "c2pa.edited", "digitalSourceType": digital_source_type(method),
                    "softwareAgent": {"name": tool, "version": tool_version()},
                    "description": f"face replaced ({method})"})
    assertions = [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]
    if record is not None:
        assertions.append({"label": "org.piqperfect.edit", "data": record})
    return {"claim_generator_info": [{"name": "piqperfect", "version": tool_version()}], "title": title,
            "assertions": assertions}


def sign(data: bytes, fmt: str, title: str, photo: Ingredient, refs: Sequence[Ingredient], method: str, tool: str,
         credentials: Credentials, record: dict | None = None) -> bytes:
    """`data` (the encoded output) with a signed C2PA manifest embedded."""
    import c2pa

    builder = c2pa.Builder(manifest(title, method, tool, refs, record))
    builder.add_ingredient({"title": photo.title, "relationship": "parentOf", "label": "photo"},
                           MIME[photo.format], io.BytesIO(photo.data))
    for i, ref in enumerate(refs):
        builder.add_ingredient({"title": ref.title, "relationship": "componentOf", "label": f"reference{i}"},
                               MIME[ref.format], io.BytesIO(ref.data))
    out = io.BytesIO()
    try:
        builder.sign(credentials.signer(), MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as err:
        raise Reject("signing_failed", f"{title}: C2PA signing failed ({err})") from err
    return out.getvalue()


@dataclasses.dataclass
class CredentialsReading:
    """What c2pa's Reader says of a file."""

    state: str                        # Valid | Trusted | Invalid
    failures: list[dict]              # validation failures of the active manifest (code, explanation)
    manifest: dict                    # the active manifest as c2pa reads it
    signer: str | None

    @property
    def data_changed(self) -> bool:
        """The pixels (or bytes) are not those signed: edited after marking."""
        return any(f.get("code") in DATA_CHANGED for f in self.failures)

    def summary(self) -> dict:
        m = self.manifest
        actions = [a for x in m.get("assertions", []) if x.get("label", "").startswith("c2pa.actions")
                   for a in x.get("data", {}).get("actions", [])]
        return {"validation_state": self.state, "failures": [f.get("code") for f in self.failures],
                "signer": self.signer, "title": m.get("title"),
                "claim_generator": [g.get("name") for g in m.get("claim_generator_info", [])],
                "actions": [{k: a[k] for k in ("action", "digitalSourceType") if k in a} for a in actions],
                "ingredients": [{"title": i.get("title"), "relationship": i.get("relationship"),
                                 "has_credentials": "active_manifest" in i} for i in m.get("ingredients", [])]}


def read_credentials(path: str | Path) -> CredentialsReading | None:
    """The file's C2PA manifest read and validated by c2pa's Reader; None where it has none."""
    import c2pa

    try:
        reader = c2pa.Reader.try_create(str(path))
    except c2pa.C2paError as err:
        return CredentialsReading("Invalid", [{"code": "unreadable", "explanation": str(err)}], {}, None)
    if reader is None:
        return None
    with reader:
        results = reader.get_validation_results() or {}
        active = reader.get_active_manifest() or {}
        state = reader.get_validation_state() or "Invalid"
    failures = (results.get("activeManifest") or {}).get("failure", [])
    info = active.get("signature_info") or {}
    return CredentialsReading(state, failures, active, info.get("common_name") or info.get("issuer"))


def init_pair(folder: Path, days: int = 730, force: bool = False) -> tuple[Path, Path]:
    """A local signing pair in `folder`: a self-signed root (root.pem), a signing certificate it
    issued (signer.pem: the chain, signer first) and the signer's P-256 key (signer.key, 0600).
    Refuses to overwrite an existing pair unless `force`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path, key_path = folder / "signer.pem", folder / "signer.key"
    if not force and (cert_path.exists() or key_path.exists()):
        raise Reject("exists", f"{folder} already holds a pair (signer.pem / signer.key); --force replaces it")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PiQPerfect local signer")])

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    start = now - datetime.timedelta(minutes=5)
    root = (x509.CertificateBuilder().subject_name(name("piq local root")).issuer_name(name("piq local root"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=days + 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    # c2pa refuses a self-signed signing certificate: the signer is an end entity the root issued
    cert = (x509.CertificateBuilder().subject_name(name("piq signer")).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    from facereplace.photo_io import write_atomic

    pem = serialization.Encoding.PEM
    write_atomic(folder / "root.pem", root.public_bytes(pem))
    write_atomic(cert_path, cert.public_bytes(pem) + root.public_bytes(pem))
    write_atomic(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def describe(reading: CredentialsReading) -> list[str]:
    """`piq verify`'s lines for the credentials."""
    s = reading.summary()
    if reading.data_changed:
        head = "INVALID: the signature no longer matches the image (edited after it was signed)"
    elif reading.state in ("Valid", "Trusted"):
        head = f"{reading.state}" + ("" if reading.state == "Trusted" else " (signature and hashes check; the "
                                     "signer is not on a trust list)")
    else:
        head = f"{reading.state}"
    lines = [f"  C2PA: {head}; signed by {s['signer']}"]
    if s["failures"]:
        lines.append(f"    failures: {', '.join(str(c) for c in s['failures'])}")
    for a in s["actions"]:
        lines.append(f"    action {a['action']}" + (f" ({a['digitalSourceType'].rsplit('/', 1)[-1]})"
                                                   if "digitalSourceType" in a else ""))
    for i in s["ingredients"]:
        lines.append(f"    ingredient {i['title']} ({i['relationship']}"
                     + (", with its own credentials)" if i["has_credentials"] else ")"))
    return lines


def as_json(reading: CredentialsReading | None) -> dict | None:
    return None if reading is None else {**reading.summary(), "manifest": json.loads(json.dumps(reading.manifest))}
