#!/usr/bin/env python3
"""Recompute the session-layer test vectors of docs/PROTOCOL.md, from that page alone.

The expected values are parsed from the ```text block under "#### Test vectors". Every value
is then computed independently from the fixed inputs stated in that section, using the field
layouts of "Encoding primitives", "Hello", "Auth", "Ping", "Session keys" and "Record layer".

Prints `ok   name` or `FAIL name: expected ... got ...` per value and a summary. Exits 0 only
if every value matches and the doc lists exactly the names computed here.
"""

import hashlib
import re
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOC = Path(__file__).resolve().parent / ".." / ".." / "docs" / "PROTOCOL.md"


# ---------------------------------------------------------------------------
# Parsing the expected values out of the document
# ---------------------------------------------------------------------------

def parse_expected(doc_text):
    """Return {name: bytes} from the ```text block of the "#### Test vectors" section."""
    section = doc_text.split("#### Test vectors", 1)
    if len(section) != 2:
        sys.exit("no '#### Test vectors' section in PROTOCOL.md")
    block = re.search(r"```text\n(.*?)```", section[1], re.S)
    if not block:
        sys.exit("no ```text block in the Test vectors section")
    values, current = {}, None
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        m = re.match(r"^(\w+)\s*=\s*([0-9a-fA-F]*)\s*$", line)
        if m:  # "name = hex" or "name =" (hex follows on indented lines)
            current = m.group(1)
            if current in values:
                sys.exit(f"duplicate name in test vectors: {current}")
            values[current] = m.group(2)
        elif line[:1].isspace() and current is not None:  # continuation line
            values[current] += line.strip()
        else:
            sys.exit(f"unparsable test-vector line: {line!r}")
    return {name: bytes.fromhex(hx) for name, hx in values.items()}


# ---------------------------------------------------------------------------
# Encoding primitives ("Encoding primitives" section): all little-endian
# ---------------------------------------------------------------------------

def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def string(s, cap):
    """string<cap>: u32 byte length, then the UTF-8 bytes."""
    raw = s.encode("utf-8")
    assert len(raw) <= cap
    return u32(len(raw)) + raw


def fixed(b, n):
    """bytes[n] / hash: exactly n raw bytes, no prefix."""
    assert len(b) == n
    return b


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

def encode_hello(h):
    """Hello (0x0001), version-2 layout, fields in table order."""
    return b"".join([
        u32(h["version"]),
        string(h["network"], 16),
        fixed(h["genesisHash"], 32),
        fixed(h["nodeId"], 32),
        fixed(h["challenge"], 32),
        string(h["listenAddr"], 255),
        u32(h["height"]),
        fixed(h["tipHash"], 32),
        u32(h["services"]),
        string(h["userAgent"], 64),
        u64(h["timestamp"]),
        fixed(h["ephemeralKey"], 32),
        u8(h["transport"]),
    ])


def encode_ping(nonce, height, tip_hash, timestamp):
    """Ping (0x0010), 52 bytes."""
    return u64(nonce) + u32(height) + fixed(tip_hash, 32) + u64(timestamp)


ROLE_INITIATOR, ROLE_RESPONDER = 0x01, 0x02


def encode_auth(node_key, role, th, operator_key=None):
    """Auth (0x0002): node-key signature, hasOperator, optional operator proof.

    Signed messages: "TIME/p2p-auth/v2" ‖ role ‖ th (node key) and
    "TIME/mn-auth/v2" ‖ role ‖ th (operator key); role is the signer's own role.
    """
    node_msg = b"TIME/p2p-auth/v2" + u8(role) + th
    assert len(node_msg) == 49
    out = fixed(node_key.sign(node_msg), 64)
    if operator_key is None:
        return out + u8(0)
    op_msg = b"TIME/mn-auth/v2" + u8(role) + th
    assert len(op_msg) == 48
    return out + u8(1) + fixed(raw_pub(operator_key), 32) + fixed(operator_key.sign(op_msg), 64)


# ---------------------------------------------------------------------------
# Keys, session and records
# ---------------------------------------------------------------------------

def raw_pub(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def transcript_hash(magic, hi, hr):
    """th = SHA-256("TIME/p2p-handshake/v2" ‖ magic ‖ u32(len Hi) ‖ Hi ‖ u32(len Hr) ‖ Hr)."""
    return hashlib.sha256(
        b"TIME/p2p-handshake/v2" + magic + u32(len(hi)) + hi + u32(len(hr)) + hr).digest()


def session_keys(ss, th):
    """HKDF-SHA256(IKM = ss, salt = th, info = "TIME/p2p-keys/v2", L = 64) -> (k_i2r, k_r2i)."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=th,
               info=b"TIME/p2p-keys/v2").derive(ss)
    return okm[:32], okm[32:]


def seal_record(magic, key, seq, msg_type, payload):
    """Record: magic ‖ u32 L ‖ ChaCha20-Poly1305(body) ‖ tag, body = u16 type ‖ payload.

    Nonce = 4 zero bytes ‖ u64le(seq); associated data = the 8 header bytes.
    """
    body = u16(msg_type) + payload
    header = magic + u32(len(body))
    nonce = b"\x00" * 4 + u64(seq)
    # cryptography's encrypt() returns ciphertext ‖ 16-byte tag, the record's wire order.
    return header + ChaCha20Poly1305(key).encrypt(nonce, body, header)


# ---------------------------------------------------------------------------
# The fixed inputs of the "Test vectors" section
# ---------------------------------------------------------------------------

MAGIC = bytes.fromhex("54494d64")           # devnet
GENESIS = b"\xaa" * 32
MSG_AUTH, MSG_PING = 0x0002, 0x0010


def compute_all():
    init_node = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    resp_node = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
    resp_oper = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
    init_eph = X25519PrivateKey.from_private_bytes(b"\x11" * 32)
    resp_eph = X25519PrivateKey.from_private_bytes(b"\x22" * 32)

    common = dict(version=2, network="devnet", genesisHash=GENESIS, height=0,
                  tipHash=GENESIS, userAgent="timed-ts/0.1", transport=1)
    hi = encode_hello(dict(common, nodeId=raw_pub(init_node), challenge=b"\x44" * 32,
                           listenAddr="", services=2, timestamp=1_700_000_000_000,
                           ephemeralKey=raw_pub(init_eph)))
    hr = encode_hello(dict(common, nodeId=raw_pub(resp_node), challenge=b"\x55" * 32,
                           listenAddr="127.0.0.1:24200", services=3,
                           timestamp=1_700_000_000_001, ephemeralKey=raw_pub(resp_eph)))

    # Both sides must arrive at the same shared secret.
    ss = init_eph.exchange(resp_eph.public_key())
    assert ss == resp_eph.exchange(init_eph.public_key())
    assert ss != b"\x00" * 32
    th = transcript_hash(MAGIC, hi, hr)
    k_i2r, k_r2i = session_keys(ss, th)

    # The initiator has no operator key; the responder does, so it always sends the proof.
    auth_i = encode_auth(init_node, ROLE_INITIATOR, th)
    auth_r = encode_auth(resp_node, ROLE_RESPONDER, th, operator_key=resp_oper)
    ping = encode_ping(1, 0, GENESIS, 1_700_000_000_002)

    return {
        "initiator_node_pubkey": raw_pub(init_node),
        "responder_node_pubkey": raw_pub(resp_node),
        "responder_operator_pubkey": raw_pub(resp_oper),
        "initiator_ephemeral_pubkey": raw_pub(init_eph),
        "responder_ephemeral_pubkey": raw_pub(resp_eph),
        "initiator_hello": hi,
        "responder_hello": hr,
        "shared_secret": ss,
        "transcript_hash": th,
        "key_initiator_to_responder": k_i2r,
        "key_responder_to_initiator": k_r2i,
        "initiator_auth": auth_i,
        "responder_auth": auth_r,
        "initiator_record_0_auth": seal_record(MAGIC, k_i2r, 0, MSG_AUTH, auth_i),
        "initiator_record_1_ping": seal_record(MAGIC, k_i2r, 1, MSG_PING, ping),
        "responder_record_0_auth": seal_record(MAGIC, k_r2i, 0, MSG_AUTH, auth_r),
    }


def main():
    expected = parse_expected(DOC.read_text(encoding="utf-8"))
    computed = compute_all()
    failures = 0
    for name, got in computed.items():
        want = expected.get(name)
        if want is None:
            print(f"FAIL {name}: not listed in PROTOCOL.md (computed {got.hex()})")
            failures += 1
        elif want == got:
            print(f"ok   {name}")
        else:
            print(f"FAIL {name}: expected {want.hex()} got {got.hex()}")
            failures += 1
    for name in sorted(set(expected) - set(computed)):
        print(f"FAIL {name}: listed in PROTOCOL.md but not computed here")
        failures += 1
    total = len(set(expected) | set(computed))
    print(f"{total - failures}/{total} values match" + ("" if failures else ", all ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
