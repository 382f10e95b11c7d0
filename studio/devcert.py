"""A local development signing identity, so a fresh install signs what it renders.

C2PA refuses a self-signed signer, so even a development identity is a small chain: a root
CA (the trust anchor), an intermediate, and an EC P-256 end-entity leaf with the key usages
C2PA asks for (digitalSignature; emailProtection and documentSigning). ``studio keys dev``
(run by ``scripts/setup.sh``) writes it under ``<STUDIO_HOME>/signing/``, where settings find
it when STUDIO_SIGNING_CERT is not set (:func:`signing_files`). A deliverable signed with it
verifies, and reads as trusted only where this root is a trust anchor: it says nothing to
anyone else, which is what a development key should say. Production sets
STUDIO_SIGNING_CERT/KEY to the organisation's own.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.store import atomic_write_bytes

ORG = "Studio development signing (this machine only)"
FILES = {"chain": "chain.pem", "key": "key.pem", "root": "root.pem"}


@dataclass(frozen=True)
class SigningFiles:
    cert: Path  # leaf then intermediate, PEM
    key: Path  # the leaf's EC P-256 key, PEM (PKCS#8, unencrypted)
    trust: Path | None  # root(s) a verifier should trust, PEM
    origin: str  # "settings" | "dev"


def dev_dir(home: Path) -> Path:
    return Path(home) / "signing"


def signing_files(settings: Any) -> SigningFiles | None:
    """The signing identity to use: the one settings name (STUDIO_SIGNING_CERT/KEY), else the
    development identity under ``<home>/signing`` when ``studio keys dev`` made one, else None."""
    cert, key, trust = settings.signing_cert, settings.signing_key, settings.trust_anchors
    if cert is not None or key is not None:
        return SigningFiles(Path(cert) if cert else Path(), Path(key) if key else Path(),
                            Path(trust) if trust else None, "settings")
    folder = dev_dir(Path(settings.home))
    paths = {k: folder / v for k, v in FILES.items()}
    if all(p.is_file() for p in paths.values()):
        return SigningFiles(paths["chain"], paths["key"], Path(trust) if trust else paths["root"], "dev")
    return None


def make_dev_identity(folder: Path, *, days: int = 825, now: dt.datetime | None = None) -> SigningFiles:
    """Write a fresh root, intermediate and ES256 leaf into ``folder`` (key file mode 0600),
    each file atomically. Returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    when = now or dt.datetime.now(dt.UTC)
    start = when - dt.timedelta(minutes=5)  # a clock a little behind still accepts it

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG)])

    def cert(subject: x509.Name, issuer: x509.Name, public: object, signer: ec.EllipticCurvePrivateKey,
             *, ca: bool, path_len: int | None, valid_days: int, leaf: bool = False,
             issuer_key: ec.EllipticCurvePrivateKey | None = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(public).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
             .not_valid_before(start).not_valid_after(start + dt.timedelta(days=valid_days))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))  # type: ignore[arg-type]
        if issuer_key is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                critical=False)
        if leaf:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False,
                                              key_agreement=False, key_cert_sign=False, crl_sign=False,
                                              encipher_only=False, decipher_only=False), critical=True)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                                       x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")]),
                                critical=False)
        else:
            b = b.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False,
                                              key_agreement=False, key_cert_sign=True, crl_sign=True,
                                              encipher_only=False, decipher_only=False), critical=True)
        return b.sign(signer, hashes.SHA256())

    root_key = ec.generate_private_key(ec.SECP256R1())
    mid_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name, mid_name = name("Studio dev root CA"), name("Studio dev intermediate CA")
    root = cert(root_name, root_name, root_key.public_key(), root_key, ca=True, path_len=1,
                valid_days=days * 2)
    mid = cert(mid_name, root_name, mid_key.public_key(), root_key, ca=True, path_len=0,
               valid_days=days * 2, issuer_key=root_key)
    leaf = cert(name(f"Studio dev signer ({os.uname().nodename})"), mid_name, leaf_key.public_key(), mid_key,
                ca=False, path_len=None, valid_days=days, leaf=True, issuer_key=mid_key)
    pem = serialization.Encoding.PEM
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / v for k, v in FILES.items()}
    key_bytes = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    atomic_write_bytes(paths["key"], key_bytes)
    os.chmod(paths["key"], 0o600)
    atomic_write_bytes(paths["chain"], leaf.public_bytes(pem) + mid.public_bytes(pem))
    atomic_write_bytes(paths["root"], root.public_bytes(pem))
    return SigningFiles(paths["chain"], paths["key"], paths["root"], "dev")
