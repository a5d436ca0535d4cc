"""Certificates for the tests, made with python3-cryptography: leaves of
every key type sluice serves (RSA, ECDSA P-256 and P-384, Ed25519) and of
some it does not, chains, and the broken files operators meet (expired, not
yet valid, key of another certificate, chain out of order)."""

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
DAY = datetime.timedelta(days=1)


def key(kind):
    """A private key: rsa, rsa1024, p256, p384, ed25519, ed448, dsa."""
    if kind == "rsa":
        return rsa.generate_private_key(65537, 2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(65537, 1024)
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    if kind == "dsa":
        return dsa.generate_private_key(2048)
    raise ValueError(kind)


def _hash_for(k):
    return None if isinstance(k, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) \
        else hashes.SHA256()


def cert(subject_key, names, issuer=None, not_before=None, not_after=None, ca=False):
    """A certificate for names (DNS SANs; the first is also the CN), signed
    by issuer (cert, key) or self-signed."""
    cn = names[0] if names else "sluice test"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, subject_key)
    b = (x509.CertificateBuilder()
         .subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(subject_key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - DAY)
         .not_valid_after(not_after or NOW + 365 * DAY))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                            critical=False)
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return b.sign(issuer_key, _hash_for(issuer_key))


def pem_cert(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def write_pair(d, stem, certs, k):
    """Write stem.crt (certs in the order given) and stem.key under d;
    returns {"cert": path, "key": path} as a config entry."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{stem}.crt").write_bytes(pem_cert(*certs))
    (d / f"{stem}.key").write_bytes(pem_key(k))
    return {"cert": str(d / f"{stem}.crt"), "key": str(d / f"{stem}.key")}


def leaf(d, kind, names=("mail.example.test",), **kw):
    """A self-signed leaf of key type kind written under d; config entry."""
    k = key(kind)
    return write_pair(d, f"{kind}-{'-'.join(names) or 'noname'}".replace("*", "star"),
                      [cert(k, list(names), **kw)], k)


def chain(d, kind, names=("mail.example.test",)):
    """leaf <- intermediate <- root, each its own key: (leaf entry with the
    chain in order, the same with the chain reversed, root PEM path)."""
    d = Path(d)
    root_k, int_k, leaf_k = key("p256"), key("p256"), key(kind)
    root = cert(root_k, ["sluice test root"], ca=True)
    inter = cert(int_k, ["sluice test intermediate"], issuer=(root, root_k), ca=True)
    lf = cert(leaf_k, list(names), issuer=(inter, int_k))
    good = write_pair(d, f"chain-{kind}", [lf, inter], leaf_k)
    bad = write_pair(d, f"chain-{kind}-reversed", [inter, lf], leaf_k)
    bad_order = write_pair(d, f"chain-{kind}-misordered", [lf, root, inter], leaf_k)
    (d / "root.pem").write_bytes(pem_cert(root))
    return good, bad, bad_order, str(d / "root.pem")
