"""Disclosure and provenance (studio.provenance, issue 14): IPTC digitalSourceType in XMP read
back with exiftool, C2PA manifests signed with a certificate chain the test makes (root CA,
intermediate, ES256 leaf) and read back with c2pa-python's own Reader, tampering, re-signing,
`studio verify`, and the refusals of credentials C2PA would not take. No key is committed:
every key here is made in a temp folder."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from studio import provenance as prov
from studio.cli import main
from studio.errors import StudioError
from studio.specs import Catalog

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None or shutil.which("ffmpeg") is None,
                                reason="needs exiftool and ffmpeg (scripts/setup.sh)")

c2pa = pytest.importorskip("c2pa")

# ---------------------------------------------------------------- a throwaway PKI


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Studio Test Org")])


def _ku(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _cert(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any, *, ca: bool,
          days: tuple[int, int] = (-1, 30), ku: x509.KeyUsage | None = None,
          eku: list[x509.ObjectIdentifier] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject))
         .issuer_name(issuer.subject if issuer else _name(subject))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + dt.timedelta(days=days[0])).not_valid_after(now + dt.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca and issuer else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                        critical=False))
    if ca:
        b = b.add_extension(_ku(cert_sign=True), critical=True)
    elif ku is not None:
        b = b.add_extension(ku, critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(folder: Path, *, leaf: str = "good") -> dict[str, Any]:
    """A root CA, an intermediate and an ES256 leaf (digitalSignature; emailProtection and
    documentSigning; AKI/SKI), written to ``folder``: chain.pem (leaf, intermediate),
    key.pem, root.pem. ``leaf`` makes a bad one instead: self-signed, no-ku, no-eku, expired."""
    folder.mkdir(parents=True, exist_ok=True)
    root_k = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Studio Test Root CA", root_k, None, root_k, ca=True, days=(-1, 3650))
    int_k = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("Studio Test Intermediate CA", int_k, root, root_k, ca=True, days=(-1, 365))
    leaf_k = ec.generate_private_key(ec.SECP256R1())
    ku = None if leaf == "no-ku" else _ku(digital_signature=True)
    eku = None if leaf == "no-eku" else [ExtendedKeyUsageOID.EMAIL_PROTECTION, x509.ObjectIdentifier(prov.EKU_DOCUMENT_SIGNING)]
    days = (-30, -1) if leaf == "expired" else (-1, 30)
    if leaf == "self-signed":
        cert = _cert("Studio Test Signer", leaf_k, None, leaf_k, ca=False, ku=ku, eku=eku, days=days)
        chain = _pem(cert)
    else:
        cert = _cert("Studio Test Signer", leaf_k, inter, int_k, ca=False, ku=ku, eku=eku, days=days)
        chain = _pem(cert, inter)
    paths = {"chain": folder / "chain.pem", "key": folder / "key.pem", "root": folder / "root.pem"}
    paths["chain"].write_bytes(chain)
    paths["key"].write_bytes(_key_pem(leaf_k))
    paths["root"].write_bytes(_pem(root))
    return {**paths, "chain_pem": chain, "key_pem": _key_pem(leaf_k), "root_pem": _pem(root)}


# ---------------------------------------------------------------- media and components

def _sha(n: int) -> str:
    return f"{n:064x}"


SHOT = {"kind": "shot", "name": "beat-01_shot.mp4", "sha256": _sha(1), "generated": True, "model": "sd-tiny"}
VOICE = {"kind": "voice", "name": "line-01.wav", "sha256": _sha(2), "generated": True, "model": "joe-us"}
LOGO = {"kind": "logo", "name": "acme-logo.svg", "sha256": _sha(3), "generated": False,
        "rights": {"licensor": "ACME", "licence": "brand-2025", "territories": ["worldwide"]}}
GENERATED = [SHOT, VOICE]
COMPOSITE = [SHOT, VOICE, LOGO]


def make_media(folder: Path, ext: str, size: tuple[int, int] = (96, 54), seconds: float = 1.0) -> Path:
    path = folder / f"deliverable{ext}"
    if ext == ".mp4":
        w, h = size
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=10",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                        "-movflags", "+faststart", str(path)], check=True)
    else:
        img = Image.linear_gradient("L").resize(size).convert("RGB")
        img.save(path, quality=90) if ext == ".jpg" else img.save(path)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def creds(pki: dict[str, Any]) -> prov.Credentials:
    return prov.check_credentials(pki["chain_pem"], pki["key_pem"])


@pytest.fixture(scope="module")
def youtube_disclosure() -> list[Any]:
    return list(Catalog().specs["youtube-1080p"].disclosure)


CASES = {"jpg-composite": (".jpg", COMPOSITE), "jpg-generated": (".jpg", GENERATED),
         "png-generated": (".png", GENERATED), "mp4-composite": (".mp4", COMPOSITE)}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, creds: prov.Credentials,
           youtube_disclosure: list[Any]) -> dict[str, Path]:
    """Each case's deliverable, disclosed (XMP, then signed) once for the module."""
    out = {}
    for case, (ext, comps) in CASES.items():
        path = make_media(tmp_path_factory.mktemp(case), ext)
        prov.disclose(path, comps, disclosures=youtube_disclosure, title=f"spot {case}", credentials=creds)
        out[case] = path
    return out


def _store(path: Path, anchors: bytes | None = None) -> tuple[str, dict[str, Any]]:
    """c2pa-python's own reading of the file: validation state and manifest store."""
    conf: dict[str, Any] = {"trust": {"trust_anchors": anchors.decode()}} if anchors else {}
    with c2pa.Reader(str(path), context=c2pa.Context.from_dict(conf)) as r:
        return r.get_validation_state(), json.loads(r.json())


def _active(store: dict[str, Any]) -> dict[str, Any]:
    return store["manifests"][store["active_manifest"]]


def _flip_media_byte(src: Path, dest: Path) -> Path:
    """A copy of ``src`` with one byte of picture data changed (not the manifest's)."""
    data = bytearray(src.read_bytes())
    if src.suffix == ".mp4":
        i = data.rfind(b"mdat") + 64
    elif src.suffix == ".png":
        i = data.rfind(b"IDAT") + 20
    else:
        i = len(data) - 40  # inside the entropy-coded scan, before the EOI marker
    data[i] ^= 0x55
    dest.write_bytes(bytes(data))
    return dest


# ---------------------------------------------------------------- source type


def test_source_type_from_components() -> None:
    gen = prov.components_from(GENERATED)
    assert prov.source_type(gen) == prov.TRAINED
    assert prov.source_type(prov.components_from(COMPOSITE)) == prov.COMPOSITE
    assert prov.TRAINED.endswith("/trainedAlgorithmicMedia")
    assert prov.COMPOSITE.endswith("/compositeWithTrainedAlgorithmicMedia")
    with pytest.raises(StudioError, match="none of the deliverable's components is generated"):
        prov.source_type(prov.components_from([LOGO]))
    with pytest.raises(StudioError, match="no components"):
        prov.source_type([])
    with pytest.raises(StudioError, match=r"components\[1\].*must name its model or voice"):
        prov.components_from([SHOT, {**VOICE, "model": None}])
    with pytest.raises(StudioError, match=r"components\[0\]\.sha256"):
        prov.components_from([{**SHOT, "sha256": "abc"}])


def test_code_made_parts_are_algorithmic_not_trained() -> None:
    # The procedural generator is code, not a trained model: its pictures alone are
    # algorithmicMedia, with a logo compositeSynthetic; one trained part (a neural voice)
    # makes the whole composite-with-trained.
    code = {**SHOT, "model": "procedural", "trained": False}
    assert prov.source_type(prov.components_from([code])) == prov.ALGORITHMIC
    assert prov.source_type(prov.components_from([code, LOGO])) == prov.COMPOSITE_SYNTHETIC
    assert prov.source_type(prov.components_from([code, VOICE, LOGO])) == prov.COMPOSITE
    assert prov.ALGORITHMIC.endswith("/algorithmicMedia") and prov.COMPOSITE_SYNTHETIC.endswith("/compositeSynthetic")


def test_dev_identity_signs_and_verifies_when_no_certificate_is_set(tmp_path: Path) -> None:
    from studio.devcert import dev_dir, make_dev_identity
    from studio.settings import Settings

    bare = Settings(home=tmp_path / "bare")
    with pytest.raises(StudioError, match=r"no signing credentials: STUDIO_SIGNING_CERT and STUDIO_SIGNING_KEY "
                                          r"not set, and no development identity in .* — run `studio keys dev`"):
        prov.load_credentials(bare)
    home = tmp_path / "home"
    files = make_dev_identity(dev_dir(home))
    assert files.key.stat().st_mode & 0o077 == 0  # the key is the owner's only
    creds = prov.load_credentials(Settings(home=home))
    assert "Studio dev signer" in creds.signer
    path = make_media(tmp_path, ".jpg")
    prov.disclose(path, prov.components_from(COMPOSITE), title="dev", credentials=creds)
    report = prov.verify(path, trust_anchors_pem=files.trust.read_bytes())
    assert report["trusted"] and report["digital_source_type"] == prov.COMPOSITE


# ---------------------------------------------------------------- XMP


@pytest.mark.parametrize("case", list(CASES))
def test_exiftool_reads_the_source_type(signed: dict[str, Path], case: str) -> None:
    _, comps = CASES[case]
    proc = subprocess.run(["exiftool", "-j", "-XMP-iptcExt:DigitalSourceType", "-XMP-dc:Description",
                           str(signed[case])], capture_output=True, text=True, check=True)
    row = json.loads(proc.stdout)[0]
    want = prov.COMPOSITE if any(not c["generated"] for c in comps) else prov.TRAINED
    assert row["DigitalSourceType"] == want
    assert "sd-tiny" in row["Description"] and "joe-us" in row["Description"]


def test_write_xmp_is_atomic_and_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    before = broken.read_bytes()
    with pytest.raises(StudioError, match=r"broken\.jpg: stage disclosure: exiftool could not write XMP"):
        prov.write_xmp(broken, prov.TRAINED)
    assert broken.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]  # no temp copy left behind
    with pytest.raises(StudioError, match="not an IPTC digitalSourceType URI"):
        prov.write_xmp(make_media(tmp_path, ".png"), "trainedAlgorithmicMedia")
    with pytest.raises(StudioError, match=r"cannot disclose a \.gif file"):
        prov.write_xmp(tmp_path / "x.gif", prov.TRAINED)


# ---------------------------------------------------------------- the signed manifest


@pytest.mark.parametrize("case", list(CASES))
def test_reader_validates_and_trusts_with_the_root(signed: dict[str, Path], pki: dict[str, Any], case: str) -> None:
    state, store = _store(signed[case])
    assert state == "Valid"
    assert [v["code"] for v in store["validation_status"]] == ["signingCredential.untrusted"]
    state, store = _store(signed[case], pki["root_pem"])
    assert state == "Trusted", store.get("validation_status")
    m = _active(store)
    assert m["signature_info"]["alg"].upper() == "ES256"
    assert m["signature_info"]["common_name"] == "Studio Test Signer"
    _, comps = CASES[case]
    ings = {i["title"]: i for i in m["ingredients"]}
    assert set(ings) == {c["name"] for c in comps}
    for c in comps:
        assert ings[c["name"]]["relationship"] == "componentOf"
        assert ings[c["name"]]["instance_id"] == f"sha256:{c['sha256']}"


def test_manifest_actions_components_and_disclosure(signed: dict[str, Path], youtube_disclosure: list[Any]) -> None:
    assert youtube_disclosure and youtube_disclosure[0].platform == "youtube"
    for case, composite in (("jpg-composite", True), ("jpg-generated", False)):
        _, store = _store(signed[case])
        m = _active(store)
        by = {a["label"]: a["data"] for a in m["assertions"]}
        actions = by["c2pa.actions.v2"]["actions"]
        assert actions[0]["action"] == "c2pa.created"
        assert actions[0]["digitalSourceType"] == (prov.COMPOSITE if composite else prov.TRAINED)
        placed = [a for a in actions if a["action"] == "c2pa.placed"]
        assert len(placed) == (1 if composite else 0)
        if composite:  # the logo is placed: one ingredient reference
            assert len(placed[0]["parameters"]["ingredients"]) == 1
        recorded = by[prov.COMPONENTS_LABEL]["components"]
        assert [c["sha256"] for c in recorded] == [c["sha256"] for c in CASES[case][1]]
        if composite:
            assert recorded[2]["rights"]["licensor"] == "ACME" and recorded[2]["generated"] is False
        disc = by[prov.DISCLOSURE_LABEL]
        assert disc["digitalSourceType"] == actions[0]["digitalSourceType"]
        assert disc["platforms"][0]["platform"] == "youtube"
        assert disc["platforms"][0]["label"] == "altered-or-synthetic-content"
        assert "14328491" in disc["platforms"][0]["source"]


def test_verify_reports_the_chain(signed: dict[str, Path], pki: dict[str, Any]) -> None:
    report = prov.verify(signed["mp4-composite"], trust_anchors_pem=pki["root_pem"])
    assert report["state"] == "Trusted" and report["trusted"] is True
    assert report["digital_source_type"] == prov.COMPOSITE
    assert report["signer"]["common_name"] == "Studio Test Signer"
    kids = report["chain"]["ingredients"]
    assert [(k["title"], k["source_type"]) for k in kids] == [
        ("beat-01_shot.mp4", prov.TRAINED), ("line-01.wav", prov.TRAINED), ("acme-logo.svg", None)]
    assert kids[0]["model"] == "sd-tiny" and kids[2]["generated"] is False
    assert prov.verify(signed["png-generated"])["trusted"] is False  # valid, no anchors given


@pytest.mark.parametrize("case", ["jpg-generated", "png-generated", "mp4-composite"])
def test_a_changed_byte_fails_verification(signed: dict[str, Path], pki: dict[str, Any], tmp_path: Path,
                                           case: str) -> None:
    bad = _flip_media_byte(signed[case], tmp_path / signed[case].name)
    state, store = _store(bad, pki["root_pem"])
    assert state == "Invalid"
    assert any(v["code"].endswith("Hash.mismatch") for v in store["validation_status"]), store["validation_status"]
    with pytest.raises(prov.ProvenanceError, match=r"deliverable\.\w+: stage verify: the C2PA manifest does not "
                                                   r"validate \(.*Hash\.mismatch") as info:
        prov.verify(bad, trust_anchors_pem=pki["root_pem"])
    assert info.value.exit_code == 1 and info.value.report["chain"]["ingredients"]


def test_resigning_keeps_the_old_manifest_as_parent(signed: dict[str, Path], creds: prov.Credentials,
                                                    pki: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "again.jpg"
    shutil.copyfile(signed["jpg-composite"], path)
    _, old = _store(path)
    done = prov.disclose(path, GENERATED, credentials=creds, title="spot, re-signed")
    assert done["parent"] == "previous manifest"
    state, store = _store(path, pki["root_pem"])
    assert state == "Trusted", store.get("validation_status")
    m = _active(store)
    parents = [i for i in m["ingredients"] if i["relationship"] == "parentOf"]
    assert len(parents) == 1 and parents[0]["active_manifest"] == old["active_manifest"]
    actions = [a["action"] for a in next(a for a in m["assertions"] if a["label"] == "c2pa.actions.v2")["data"]["actions"]]
    assert actions[:2] == ["c2pa.opened", "c2pa.edited"]
    report = prov.verify(path, trust_anchors_pem=pki["root_pem"])
    parent = next(k for k in report["chain"]["ingredients"] if k["relationship"] == "parentOf")
    assert parent["source_type"] == prov.COMPOSITE  # the old manifest, as it was
    assert [k["title"] for k in parent["ingredients"]] == ["beat-01_shot.mp4", "line-01.wav", "acme-logo.svg"]
    assert report["digital_source_type"] == prov.TRAINED


def test_a_reencoded_file_names_its_signed_source_as_parent(signed: dict[str, Path], creds: prov.Credentials,
                                                           tmp_path: Path) -> None:
    # A conform re-encodes: the new file has no manifest; the signed file it came from is the parent.
    out = tmp_path / "conformed.png"
    Image.open(signed["jpg-generated"]).save(out)
    assert _store_or_none(out) is None
    prov.disclose(out, GENERATED, parent=signed["jpg-generated"], credentials=creds)
    report = prov.verify(out)
    parent = next(k for k in report["chain"]["ingredients"] if k["relationship"] == "parentOf")
    assert parent["title"] == "deliverable.jpg" and parent["source_type"] == prov.TRAINED


def _store_or_none(path: Path) -> Any:
    reader = c2pa.Reader.try_create(str(path))
    if reader is None:
        return None
    with reader:
        return json.loads(reader.json())


# ---------------------------------------------------------------- studio verify


def test_cli_verify_prints_the_chain_and_exits_0_or_1(signed: dict[str, Path], pki: dict[str, Any],
                                                       tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(signed["mp4-composite"]), "--trust", str(pki["root"])])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.splitlines()
    assert "trusted" in lines[0] and "Studio Test Signer" in lines[0]
    assert lines[1].startswith("spot mp4-composite  ") and "compositeWithTrainedAlgorithmicMedia" in lines[1]
    assert lines[2].startswith("  beat-01_shot.mp4") and "trainedAlgorithmicMedia" in lines[2]
    assert lines[4].startswith("  acme-logo.svg") and "not generated" in lines[4]

    as_json = runner.invoke(main, ["verify", str(signed["png-generated"]), "--json"])
    assert as_json.exit_code == 0
    doc = json.loads(as_json.output)
    assert doc["valid"] is True and doc["trusted"] is False and doc["digital_source_type"] == prov.TRAINED

    other = make_pki(tmp_path / "other")  # a root that did not issue the signer
    wrong = runner.invoke(main, ["verify", str(signed["png-generated"]), "--trust", str(other["root"])])
    assert wrong.exit_code == 1
    assert "not reached from the trust anchors" in wrong.output

    plain = make_media(tmp_path, ".jpg")
    absent = runner.invoke(main, ["verify", str(plain)])
    assert absent.exit_code == 1
    assert f"studio: error: {plain}: stage verify: no C2PA manifest" in absent.output

    bad = _flip_media_byte(signed["jpg-generated"], tmp_path / "bad.jpg")
    tampered = runner.invoke(main, ["verify", str(bad), "--json"])
    assert tampered.exit_code == 1
    assert json.loads(tampered.output.split("\nstudio: error:")[0])["valid"] is False


def test_cli_sign_with_settings(pki: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.settings import get_settings

    comps = tmp_path / "components.json"
    comps.write_text(json.dumps(COMPOSITE))
    path = make_media(tmp_path, ".png")
    monkeypatch.setenv("STUDIO_SIGNING_CERT", str(pki["chain"]))
    monkeypatch.setenv("STUDIO_SIGNING_KEY", str(pki["key"]))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(main, ["sign", str(path), "--components", str(comps), "--spec", "reels-9x16"])
        assert res.exit_code == 0, res.output
        report = prov.verify(path, trust_anchors_pem=pki["root_pem"])
        assert [p["platform"] for p in report["disclosure"]["platforms"]] == ["instagram", "tiktok"]
        monkeypatch.delenv("STUDIO_SIGNING_KEY")
        get_settings.cache_clear()
        res = CliRunner().invoke(main, ["sign", str(path), "--components", str(comps)])
        assert res.exit_code == 2
        assert "stage disclosure: no signing credentials: STUDIO_SIGNING_KEY not set" in res.output
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------- refused credentials


@pytest.mark.parametrize(("leaf", "wording"), [
    ("self-signed", "the signing certificate is self-signed; C2PA refuses a self-signed signer — have the "
                    "organisation's CA"),
    ("no-ku", "the signing certificate lacks the digitalSignature key usage C2PA requires — issue the leaf "
              "with keyUsage = critical, digitalSignature"),
    ("no-eku", "the signing certificate lacks the emailProtection or documentSigning extended key usage"),
    ("expired", "the signing certificate expired on "),
])
def test_bad_certificates_are_refused_before_any_work(tmp_path: Path, leaf: str, wording: str) -> None:
    bad = make_pki(tmp_path / leaf, leaf=leaf)
    path = make_media(tmp_path, ".jpg")
    before = path.read_bytes()
    with pytest.raises(StudioError) as info:
        prov.sign(path, cert_chain_pem=bad["chain_pem"], private_key_pem=bad["key_pem"], components=[
            prov.Component(**SHOT)], disclosures=[], title="x")
    assert wording in str(info.value)
    assert str(info.value).startswith("signing certificate: stage disclosure: ")
    assert path.read_bytes() == before


def test_settings_name_the_bad_file(pki: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.settings import get_settings

    other = make_pki(tmp_path / "other")
    monkeypatch.setenv("STUDIO_SIGNING_CERT", str(pki["chain"]))
    monkeypatch.setenv("STUDIO_SIGNING_KEY", str(other["key"]))
    get_settings.cache_clear()
    try:
        with pytest.raises(StudioError, match=rf"{other['key']}: stage disclosure: the signing key does not "
                                              r"belong to the signing certificate"):
            prov.load_credentials()
        monkeypatch.setenv("STUDIO_SIGNING_KEY", str(tmp_path / "missing.pem"))
        get_settings.cache_clear()
        with pytest.raises(StudioError, match=r"missing\.pem: cannot read the signing key"):
            prov.load_credentials()
        expired = make_pki(tmp_path / "expired", leaf="expired")
        monkeypatch.setenv("STUDIO_SIGNING_CERT", str(expired["chain"]))
        monkeypatch.setenv("STUDIO_SIGNING_KEY", str(expired["key"]))
        get_settings.cache_clear()
        with pytest.raises(StudioError, match=rf"{expired['chain']}: stage disclosure: the signing certificate "
                                              r"expired on .* — renew it"):
            prov.load_credentials()
    finally:
        get_settings.cache_clear()
