"""Disclosure and provenance of deliverables: IPTC ``digitalSourceType`` in XMP (written with
exiftool) and a C2PA manifest signed with the organisation's certificate (c2pa-python).

One call per deliverable, after its conform: :func:`disclose` writes the XMP, then signs,
each step atomic (a temp copy beside the file, then a rename), so a reader never sees a file
whose XMP was changed after its manifest hashed it. A file that already carries a manifest
(or a ``parent`` that does: the signed file a later conform re-encoded) becomes the new
manifest's parent ingredient, so the chain back to every generated shot, voice line and
licensed component survives each re-sign.

Credentials come from settings (``STUDIO_SIGNING_CERT``, ``STUDIO_SIGNING_KEY``, optional
``STUDIO_TRUST_ANCHORS``) and are checked before any work: C2PA refuses a self-signed leaf, a
leaf without the digitalSignature key usage or without the emailProtection/documentSigning
extended usage, and an expired one, and says so late and obscurely; we say which file and
what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from studio.errors import StudioError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"

DISCLOSURE_LABEL = "studio.disclosure"
COMPONENTS_LABEL = "studio.components"
CLAIM_GENERATOR = "studio"

# What C2PA accepts as a signing certificate's extended usage (C2PA 2.x, "Certificate
# profile"): emailProtection, documentSigning, and the C2PA claim-signing purpose.
EKU_EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4"
EKU_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"
EKU_C2PA_CLAIM_SIGNING = "1.3.6.1.4.1.62558.2.1"
SIGNING_EKUS = {EKU_EMAIL_PROTECTION, EKU_DOCUMENT_SIGNING, EKU_C2PA_CLAIM_SIGNING}

# The formats signed and XMP-tagged here (the deliverables Studio makes).
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4",
        ".m4v": "video/mp4"}

FIX_CERT = ("give STUDIO_SIGNING_CERT the organisation's signing certificate (PEM, leaf first, "
            "then its intermediates) issued by a CA, and STUDIO_SIGNING_KEY its EC P-256 key")


class Component(BaseModel):
    """One part a deliverable is made of: a generated shot or voice line, a music track, a
    font, a logo, a product shot, real footage. ``generated`` decides the source type;
    ``model`` names the model or voice that made a generated one; ``rights`` is its rights
    record as the ledger keeps it (licensor, licence id, territories, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["shot", "keyframe", "voice", "music", "effect", "font", "logo", "footage",
                  "product", "reference", "caption", "other"]
    name: str = Field(min_length=1, max_length=300)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    generated: bool
    model: str | None = Field(None, max_length=200, description="model or voice id (generated ones)")
    rights: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _model_named(self) -> Component:
        if self.generated and not self.model:
            raise ValueError(f"generated component {self.name!r} must name its model or voice (model:)")
        return self


def components_from(items: Iterable[Component | dict[str, Any]], *, source: str | None = None) -> list[Component]:
    """Components from records (a JSON list, a lineage query), refused one by one with the
    index and field that is wrong."""
    out: list[Component] = []
    for i, item in enumerate(items):
        if isinstance(item, Component):
            out.append(item)
            continue
        try:
            out.append(Component.model_validate(item))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise StudioError(f"{err['msg']}", field=f"components[{i}]{'.' + where if where else ''}",
                              source=source, fix="each component needs kind, name, sha256 (64 hex), "
                              "generated, and model for a generated one") from None
    return out


def source_type(components: Sequence[Component]) -> str:
    """The IPTC digitalSourceType of a deliverable made of ``components``: purely generated
    work is ``trainedAlgorithmicMedia``; generated work with real footage, logos, product
    shots or any other non-generated part mixed in is ``compositeWithTrainedAlgorithmicMedia``."""
    if not components:
        raise StudioError("a deliverable with no components has no source type to disclose",
                          fix="pass the deliverable's components (its shots, voice lines, music, "
                              "logos...) from its lineage")
    if not any(c.generated for c in components):
        raise StudioError("none of the deliverable's components is generated: this is not "
                          "AI-generated media and has no trainedAlgorithmicMedia source type",
                          fix="mark the generated components (generated: true), or do not "
                              "disclose this file as generated")
    return TRAINED if all(c.generated for c in components) else COMPOSITE


# ---------------------------------------------------------------- credentials

@dataclass(frozen=True)
class Credentials:
    """The signing certificate chain (leaf first) and its private key, both PEM, checked."""

    cert_chain_pem: bytes
    private_key_pem: bytes
    trust_anchors_pem: bytes | None = None
    signer: str = ""  # the leaf's subject, for reports


def _read(path: Path, what: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise StudioError(f"cannot read the {what}: {e.strerror or e}", source=str(path),
                          fix=f"point {setting} at a readable PEM file") from None


def load_credentials() -> Credentials:
    """The organisation's credentials from settings, checked (see :func:`check_credentials`)."""
    from studio.settings import get_settings

    s = get_settings()
    if s.signing_cert is None or s.signing_key is None:
        missing = " and ".join(n for n, v in (("STUDIO_SIGNING_CERT", s.signing_cert),
                                              ("STUDIO_SIGNING_KEY", s.signing_key)) if v is None)
        raise StudioError(f"no signing credentials: {missing} not set", stage="disclosure",
                          fix=FIX_CERT)
    chain = _read(s.signing_cert, "signing certificate", "STUDIO_SIGNING_CERT")
    key = _read(s.signing_key, "signing key", "STUDIO_SIGNING_KEY")
    anchors = _read(s.trust_anchors, "trust anchors", "STUDIO_TRUST_ANCHORS") if s.trust_anchors else None
    return check_credentials(chain, key, trust_anchors_pem=anchors, cert_source=str(s.signing_cert),
                             key_source=str(s.signing_key))


def check_credentials(cert_chain_pem: bytes | str, private_key_pem: bytes | str, *,
                      trust_anchors_pem: bytes | str | None = None, cert_source: str | None = None,
                      key_source: str | None = None, now: dt.datetime | None = None) -> Credentials:
    """Refuse, before any work, a certificate C2PA would refuse or that cannot sign ES256:
    not PEM, expired or not yet valid, self-signed, a CA, no digitalSignature key usage, no
    emailProtection/documentSigning extended usage, not EC P-256, or not the key's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    chain_b = cert_chain_pem.encode() if isinstance(cert_chain_pem, str) else cert_chain_pem
    key_b = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    src = cert_source or "signing certificate"

    def bad(what: str, fix: str = FIX_CERT) -> StudioError:
        return StudioError(what, source=src, stage="disclosure", fix=fix)

    try:
        certs = x509.load_pem_x509_certificates(chain_b)
    except ValueError:
        raise bad("not a PEM certificate chain") from None
    leaf = certs[0]
    when = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc <= when:
        raise bad(f"the signing certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                  fix="renew it with the organisation's CA and point STUDIO_SIGNING_CERT at the new one")
    if leaf.not_valid_before_utc > when:
        raise bad(f"the signing certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                  fix="check the machine's clock, or wait until the certificate is valid")
    if leaf.issuer == leaf.subject:
        raise bad("the signing certificate is self-signed; C2PA refuses a self-signed signer",
                  fix="have the organisation's CA (or a test CA) issue the signing certificate, "
                      "and give the leaf then its intermediates")

    def ext(cls: type) -> Any:
        try:
            return leaf.extensions.get_extension_for_class(cls).value
        except x509.ExtensionNotFound:
            return None

    bc = ext(x509.BasicConstraints)
    if bc is not None and bc.ca:
        raise bad("the signing certificate is a CA certificate, not an end-entity (leaf) certificate",
                  fix="sign with a leaf the CA issued (basicConstraints CA:FALSE); list it first")
    ku = ext(x509.KeyUsage)
    if ku is None or not ku.digital_signature:
        raise bad("the signing certificate lacks the digitalSignature key usage C2PA requires",
                  fix="issue the leaf with keyUsage = critical, digitalSignature")
    eku = ext(x509.ExtendedKeyUsage)
    if eku is None or not {o.dotted_string for o in eku} & SIGNING_EKUS:
        raise bad("the signing certificate lacks the emailProtection or documentSigning extended "
                  "key usage C2PA requires",
                  fix="issue the leaf with extendedKeyUsage = emailProtection (or documentSigning)")
    pub = leaf.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
        raise bad("the signing certificate's key is not EC P-256; Studio signs ES256",
                  fix="issue the leaf for an EC P-256 (prime256v1) key")
    try:
        key = serialization.load_pem_private_key(key_b, password=None)
    except (ValueError, TypeError) as e:
        raise StudioError(f"not an unencrypted PEM private key ({e})", source=key_source or "signing key",
                          stage="disclosure", fix="give STUDIO_SIGNING_KEY the leaf's EC P-256 key, "
                          "PEM (PKCS#8 or SEC1), without a passphrase") from None
    if key.public_key().public_numbers() != pub.public_numbers():  # type: ignore[union-attr]
        raise StudioError("the signing key does not belong to the signing certificate",
                          source=key_source or "signing key", stage="disclosure",
                          fix=f"pair STUDIO_SIGNING_KEY with the key {src} was issued for")
    anchors = trust_anchors_pem.encode() if isinstance(trust_anchors_pem, str) else trust_anchors_pem
    if anchors is not None:
        try:
            x509.load_pem_x509_certificates(anchors)
        except ValueError:
            raise StudioError("not PEM certificates", source="trust anchors", stage="disclosure",
                              fix="give STUDIO_TRUST_ANCHORS (or --trust) the root CA certificates, PEM") from None
    return Credentials(chain_b, key_b, anchors, leaf.subject.rfc4514_string())


# ---------------------------------------------------------------- XMP

def _mime(path: Path) -> str:
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise StudioError(f"cannot disclose a {path.suffix or 'suffix-less'} file", source=str(path),
                          stage="disclosure", fix=f"disclosure covers {', '.join(sorted(set(MIME)))} deliverables")
    return mime


def _exiftool() -> str:
    exe = shutil.which("exiftool")
    if exe is None:
        raise StudioError("exiftool is not installed", stage="disclosure",
                          fix="run scripts/setup.sh (Debian package libimage-exiftool-perl)")
    return exe


def _temp_beside(path: Path, tag: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{tag}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_xmp(path: str | os.PathLike[str], source_type: str, extra: dict[str, str] | None = None) -> None:
    """Write XMP-iptcExt:DigitalSourceType (plus ``extra``: ``description`` for dc:description,
    ``credit`` for photoshop:Credit) into a JPEG, PNG or MP4, atomically: exiftool edits a
    temp copy, which then replaces the file. Must run before :func:`sign`: editing a signed
    file breaks its manifest's hash."""
    path = Path(path)
    _mime(path)
    if not path.is_file():
        raise StudioError("no such file", source=str(path), stage="disclosure")
    if not source_type.startswith(IPTC):
        raise StudioError(f"{source_type!r} is not an IPTC digitalSourceType URI", source=str(path),
                          stage="disclosure", fix=f"use source_type(components): {TRAINED} or {COMPOSITE}")
    extra = extra or {}
    tags = {"XMP-iptcExt:DigitalSourceType": source_type}
    if extra.get("description"):
        tags["XMP-dc:Description"] = extra["description"]
    if extra.get("credit"):
        tags["XMP-photoshop:Credit"] = extra["credit"]
    tmp = _temp_beside(path, "xmp")
    try:
        shutil.copyfile(path, tmp)
        # -n: values as given; -overwrite_original: exiftool edits the temp in place (its own
        # _original backup would be left beside the deliverable otherwise).
        args = [_exiftool(), "-q", "-q", "-n", "-overwrite_original", "-api", "LargeFileSupport=1"]
        args += [f"-{k}={v}" for k, v in tags.items()]
        proc = subprocess.run([*args, "--", str(tmp)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StudioError(f"exiftool could not write XMP: {proc.stderr.strip() or proc.returncode}",
                              source=str(path), stage="disclosure",
                              fix="check the file is a complete JPEG, PNG or MP4 (ffprobe it)")
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_xmp(path: str | os.PathLike[str]) -> dict[str, str]:
    """The disclosure tags exiftool reads back: DigitalSourceType, Description, Credit."""
    proc = subprocess.run([_exiftool(), "-j", "-n", "-XMP-iptcExt:DigitalSourceType", "-XMP-dc:Description",
                           "-XMP-photoshop:Credit", "--", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StudioError(f"exiftool could not read it: {proc.stderr.strip()}", source=str(path), stage="disclosure")
    row = json.loads(proc.stdout)[0]
    return {k: str(v) for k, v in row.items() if k != "SourceFile"}


# ---------------------------------------------------------------- C2PA

def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError as e:  # the native library failed to load
        raise StudioError(f"c2pa-python cannot be loaded: {e}", stage="disclosure",
                          fix="run scripts/setup.sh (pip install -e .)") from None
    return c2pa


def _context(trust_anchors_pem: bytes | None) -> Any:
    c2pa = _c2pa()
    # No thumbnail: it adds about 55 KB, over a banner's whole weight budget.
    conf: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
    if trust_anchors_pem:
        conf["trust"] = {"trust_anchors": trust_anchors_pem.decode()}
    return c2pa.Context.from_dict(conf)


def _disclosure_records(disclosures: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for d in disclosures:
        out.append(d.model_dump(mode="json") if isinstance(d, BaseModel) else dict(d))
    return out


def _manifest_of(path: Path, trust_anchors_pem: bytes | None) -> dict[str, Any] | None:
    """The manifest store of ``path`` as JSON, or None when it has none."""
    c2pa = _c2pa()
    try:
        reader = c2pa.Reader.try_create(str(path), context=_context(trust_anchors_pem))
    except c2pa.C2paError as e:
        raise StudioError(f"its C2PA manifest cannot be read: {e}", source=str(path), stage="disclosure",
                          fix="re-render the deliverable; a damaged manifest cannot be a parent") from None
    if reader is None:
        return None
    with reader:
        return json.loads(reader.json())


def sign(path: str | os.PathLike[str], *, cert_chain_pem: bytes | str, private_key_pem: bytes | str,
         components: Sequence[Component], disclosures: Iterable[Any] = (), title: str | None = None,
         parent: str | os.PathLike[str] | None = None, trust_anchors_pem: bytes | str | None = None,
         description: str | None = None) -> dict[str, Any]:
    """Embed a C2PA manifest in ``path`` (JPEG, PNG, MP4), signed ES256 with the chain and
    key given, atomically (signed into a temp copy, then renamed over the file).

    The manifest holds: the actions (``c2pa.created`` with the digitalSourceType, or
    ``c2pa.opened`` + ``c2pa.edited`` when there is a parent; ``c2pa.placed`` for the
    non-generated components of a composite), one ``componentOf`` ingredient per component
    (title = its name, instance id = ``sha256:<hex>``), a ``studio.components`` assertion
    with each component's record (kind, sha256, generated, model, rights), and a
    ``studio.disclosure`` assertion with the platform disclosures the channel needs.

    The parent ingredient is ``parent`` when given (the signed file a later conform
    re-encoded), else the file itself when it already carries a manifest: its bytes as they
    are now, before anything is changed. Returns what was signed."""
    path = Path(path)
    mime = _mime(path)
    if not path.is_file():
        raise StudioError("no such file", source=str(path), stage="disclosure")
    creds = check_credentials(cert_chain_pem, private_key_pem, trust_anchors_pem=trust_anchors_pem)
    comps = components_from(components, source=str(path))
    kind = source_type(comps)
    c2pa = _c2pa()
    ctx = _context(creds.trust_anchors_pem)
    disclosed = _disclosure_records(disclosures)

    parent_path = Path(parent) if parent is not None else None
    snapshot: Path | None = None
    if parent_path is None and _manifest_of(path, creds.trust_anchors_pem) is not None:
        # Re-signing in place: the old bytes (old manifest, old hash binding) are the parent.
        snapshot = _temp_beside(path, "parent")
        shutil.copyfile(path, snapshot)
        parent_path = snapshot
    elif parent_path is not None and not parent_path.is_file():
        raise StudioError("the parent file does not exist", source=str(parent_path), stage="disclosure",
                          fix="pass the signed file the conform started from, or no parent")

    ingredients = []
    for i, c in enumerate(comps):
        what = f"generated {c.kind} ({c.model})" if c.generated else f"{c.kind} (not generated)"
        ingredients.append({
            "title": c.name, "format": mimetypes.guess_type(c.name)[0] or "application/octet-stream",
            "relationship": "componentOf", "instance_id": f"sha256:{c.sha256}", "label": f"component-{i}",
            "description": what,
        })
    generated_ids = [f"component-{i}" for i, c in enumerate(comps) if c.generated]
    placed_ids = [f"component-{i}" for i, c in enumerate(comps) if not c.generated]
    actions: list[dict[str, Any]] = []
    if parent_path is None:
        actions.append({"action": "c2pa.created", "digitalSourceType": kind,
                        "parameters": {"ingredientIds": generated_ids}})
    else:
        actions.append({"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}})
        actions.append({"action": "c2pa.edited", "digitalSourceType": kind,
                        "description": description or "conformed to the channel spec",
                        "parameters": {"ingredientIds": generated_ids}})
    if placed_ids:
        actions.append({"action": "c2pa.placed", "parameters": {"ingredientIds": placed_ids}})
    manifest = {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _version()}],
        "title": title or path.name,
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": COMPONENTS_LABEL, "data": {"components": [c.model_dump(mode="json") for c in comps]}},
            {"label": DISCLOSURE_LABEL, "data": {"digitalSourceType": kind, "platforms": disclosed}},
        ],
        "ingredients": ingredients,
    }
    out = _temp_beside(path, "signed")
    try:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, creds.cert_chain_pem, creds.private_key_pem, None)
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest, context=ctx) as builder:
            if parent_path is not None:
                pmime = MIME.get(parent_path.suffix.lower(), mime)
                with open(parent_path, "rb") as f:
                    builder.add_ingredient({"title": f"{path.name} (before this signing)" if snapshot
                                            else parent_path.name, "relationship": "parentOf",
                                            "label": "parent"}, pmime, f)
            with open(path, "rb") as src, open(out, "w+b") as dst:
                builder.sign(signer, mime, src, dst)
        os.chmod(out, path.stat().st_mode & 0o777)
        os.replace(out, path)
    except c2pa.C2paError as e:
        raise StudioError(f"C2PA signing failed: {e}", source=str(path), stage="disclosure",
                          fix="check the file is a complete JPEG, PNG or MP4 and the credentials") from None
    finally:
        out.unlink(missing_ok=True)
        if snapshot is not None:
            snapshot.unlink(missing_ok=True)
    return {"file": str(path), "digital_source_type": kind, "signer": creds.signer,
            "components": len(comps), "parent": str(parent) if parent is not None else
            ("previous manifest" if snapshot else None), "disclosures": disclosed}


def disclose(path: str | os.PathLike[str], components: Sequence[Component | dict[str, Any]], *,
             disclosures: Iterable[Any] = (), title: str | None = None,
             parent: str | os.PathLike[str] | None = None,
             credentials: Credentials | None = None) -> dict[str, Any]:
    """The one call per deliverable: XMP (source type, description, credit), then the signed
    manifest, with the credentials from settings unless given. Pass the channel spec's
    ``disclosure`` list as ``disclosures``."""
    path = Path(path)
    creds = credentials or load_credentials()  # refused before the file is touched
    comps = components_from(components, source=str(path))
    kind = source_type(comps)
    models = sorted({c.model for c in comps if c.generated and c.model})
    what = "Generated with AI" if kind == TRAINED else "Contains AI-generated material"
    write_xmp(path, kind, {"description": f"{what} ({', '.join(models)})", "credit": f"Made with Studio: {what}"})
    return sign(path, cert_chain_pem=creds.cert_chain_pem, private_key_pem=creds.private_key_pem,
                components=comps, disclosures=disclosures, title=title, parent=parent,
                trust_anchors_pem=creds.trust_anchors_pem)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("studio")
    except Exception:  # running from a source tree without metadata
        return "0"


class ProvenanceError(StudioError):
    """A file without a valid manifest: ``studio verify`` exits 1 (not 2: the command was
    right, the file fails)."""

    exit_code = 1

    def __init__(self, what: str, *, report: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(what, **kw)
        self.report = report


def _source_type_of(manifest: dict[str, Any]) -> str | None:
    for a in manifest.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                if act.get("digitalSourceType"):
                    return str(act["digitalSourceType"])
    return None


def _assertion(manifest: dict[str, Any], label: str) -> dict[str, Any] | None:
    for a in manifest.get("assertions", []):
        if a.get("label") == label:
            return a.get("data")
    return None


def _chain(store: dict[str, Any], label: str, seen: set[str]) -> dict[str, Any]:
    """One manifest and, recursively, its ingredients (a manifest reached twice is not
    walked again: a store cannot loop, but a hostile one could claim to)."""
    m = store["manifests"][label]
    seen = seen | {label}
    comps = {f"sha256:{c['sha256']}": c for c in (_assertion(m, COMPONENTS_LABEL) or {}).get("components", [])}
    node: dict[str, Any] = {
        "title": m.get("title"), "manifest": label, "source_type": _source_type_of(m),
        "signer": (m.get("signature_info") or {}).get("common_name"),
        "signed_at": (m.get("signature_info") or {}).get("time"), "ingredients": [],
    }
    for ing in m.get("ingredients", []):
        child: dict[str, Any] = {"title": ing.get("title"), "relationship": ing.get("relationship")}
        comp = comps.get(str(ing.get("instance_id")))
        if comp is not None:
            child.update(kind=comp["kind"], sha256=comp["sha256"], generated=comp["generated"],
                         model=comp.get("model"), source_type=TRAINED if comp["generated"] else None)
        sub = ing.get("active_manifest")
        if sub and sub in store["manifests"] and sub not in seen:
            child.update({k: v for k, v in _chain(store, sub, seen).items() if k != "title"})
        else:
            child.setdefault("ingredients", [])
        node["ingredients"].append(child)
    return node


def verify(path: str | os.PathLike[str], *, trust_anchors_pem: bytes | str | None = None) -> dict[str, Any]:
    """Read and validate ``path``'s C2PA manifest store. Returns the report: ``state``
    (Trusted, Valid), ``trusted``, the signer, the digitalSourceType, the disclosures, and
    ``chain``: the active manifest with its ingredients, recursively. With trust anchors, a
    signer they do not reach fails. Raises :class:`ProvenanceError` (with ``.report`` when
    there is one) when the file has no manifest or it does not validate."""
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError("no such file", source=str(path), stage="verify")
    anchors = trust_anchors_pem.encode() if isinstance(trust_anchors_pem, str) else trust_anchors_pem
    c2pa = _c2pa()
    try:
        reader = c2pa.Reader.try_create(str(path), context=_context(anchors))
    except c2pa.C2paError as e:
        raise ProvenanceError(f"its C2PA manifest cannot be read or is damaged: {e}", source=str(path),
                              stage="verify", fix="re-sign the deliverable from its last good version") from None
    if reader is None:
        raise ProvenanceError("no C2PA manifest", source=str(path), stage="verify",
                              fix="sign it (studio sign, or the render's disclosure step)")
    with reader:
        state = reader.get_validation_state()
        store = json.loads(reader.json())
    active = store.get("active_manifest")
    if not active or active not in store.get("manifests", {}):
        raise ProvenanceError("the manifest store has no active manifest", source=str(path), stage="verify")
    m = store["manifests"][active]
    codes = [v.get("code", "") for v in store.get("validation_status", []) or []]
    untrusted = [c for c in codes if c.startswith("signingCredential.untrusted")]
    failures = [c for c in codes if c not in untrusted]
    report = {
        "file": str(path), "state": state, "trusted": state == "Trusted",
        "signer": m.get("signature_info"), "digital_source_type": _source_type_of(m),
        "disclosure": _assertion(m, DISCLOSURE_LABEL), "failures": failures,
        "chain": _chain(store, active, set()),
    }
    if state not in ("Valid", "Trusted") or failures:
        raise ProvenanceError(f"the C2PA manifest does not validate ({', '.join(failures) or state})",
                              source=str(path), stage="verify", report=report,
                              fix="the file changed after it was signed, or the signature is bad: "
                                  "re-sign it from its last good version")
    if anchors is not None and state != "Trusted":
        raise ProvenanceError("the signer is not reached from the trust anchors given", source=str(path),
                              stage="verify", report=report,
                              fix="pass the root CA of the organisation's signing certificate")
    return report


def chain_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    """The chain as text, each ingredient indented under its parent, with its source type."""
    pad = "  " * depth
    st = node.get("source_type")
    kind = st.rsplit("/", 1)[-1] if st else ("not generated" if node.get("generated") is False else "-")
    bits = [node.get("title") or "?"]
    if node.get("relationship"):
        bits.append(f"[{node['relationship']}]")
    if node.get("kind"):
        bits.append(node["kind"])
    bits.append(kind)
    if node.get("model"):
        bits.append(f"model {node['model']}")
    if node.get("sha256"):
        bits.append(f"sha256 {node['sha256'][:12]}")
    if node.get("signer"):
        bits.append(f"signed by {node['signer']}")
    lines = [pad + "  ".join(bits)]
    for child in node.get("ingredients", []):
        lines += chain_lines(child, depth + 1)
    return lines
