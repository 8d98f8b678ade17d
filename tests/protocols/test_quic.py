"""protocols/quic.py: RFC 9001/9369 test vectors, real captures (v1, v2, draft-29 with Retry, mvfst, split and
out-of-order ClientHellos), coalesced packets, and hostile bytes."""

from __future__ import annotations

import random
import struct

import pytest

from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample, quic, tls
from tests.conftest import CAPTURES, write_pcap

# RFC 9001 Appendix A (QUIC v1) and RFC 9369 Appendix A (QUIC v2): DCID 0x8394c8f03e515708.
RFC_DCID = bytes.fromhex("8394c8f03e515708")

# A.2: the client's CRYPTO frame (a ClientHello for example.com), then PADDING to 1162 bytes.
CLIENT_CRYPTO_FRAME = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff")
V1_CLIENT_INITIAL = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934")
# A.3: the server's ACK + CRYPTO(ServerHello, x25519, TLS 1.3), packet number 1.
SERVER_PAYLOAD = bytes.fromhex(
    "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
    "88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
    "0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
    "020304")
V1_SERVER_INITIAL = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee")
V2_CLIENT_INITIAL = bytes.fromhex(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
    "a18b2faa745b6fe189cf772a9f84cbfc")
V2_SERVER_INITIAL = bytes.fromhex(
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
    "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
    "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    "4bed8521e2e140")


# --- RFC vectors -------------------------------------------------------------------------------------------

def test_rfc9001_a1_initial_keys():
    assert quic.initial_secret(quic.V1, RFC_DCID).hex() == (
        "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44")
    key, iv, hp = quic.initial_keys(quic.V1, RFC_DCID, False)
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2")
    key, iv, hp = quic.initial_keys(quic.V1, RFC_DCID, True)
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e", "c206b8d9b9f0f37644430b490eeaa314")


def test_rfc9369_a1_initial_keys_v2():
    assert quic.initial_secret(quic.V2, RFC_DCID).hex() == (
        "2062e8b3cd8d52092614b8071d0aa1fb7c2e3ac193f78b280e72d8f5751f6aba")
    key, iv, hp = quic.initial_keys(quic.V2, RFC_DCID, False)
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9")
    key, iv, hp = quic.initial_keys(quic.V2, RFC_DCID, True)
    assert (key.hex(), iv.hex(), hp.hex()) == (
        "82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652", "edf6d05c83121201b436e16877593c3a")


@pytest.mark.parametrize("version, packet", [(quic.V1, V1_CLIENT_INITIAL), (quic.V2, V2_CLIENT_INITIAL)],
                         ids=["rfc9001-a2", "rfc9369-a2"])
def test_rfc_client_initial_opens_to_the_crypto_frame(version, packet):
    pkt = quic.long_header(packet, 0)
    assert (pkt.kind, pkt.version, pkt.dcid, pkt.end) == ("initial", version, RFC_DCID, 1200)
    pn, payload = quic.open_initial(packet, pkt, quic.initial_keys(version, RFC_DCID, False))
    assert pn == 2 and len(payload) == 1162
    assert payload[:len(CLIENT_CRYPTO_FRAME)] == CLIENT_CRYPTO_FRAME and not any(payload[245:])
    [(ftype, (offset, data))] = list(quic.frames(payload))
    assert (ftype, offset, len(data)) == (quic.CRYPTO, 0, 245 - 4)
    hello = tls.client_hello(data)
    assert hello["sni"] == "example.com" and hello["alpn"] == ["alpn"] and hello["key_shares"] == [0x1D]
    # the server's keys, or one flipped bit anywhere, do not open it: the GCM tag checks every byte
    assert quic.open_initial(packet, pkt, quic.initial_keys(version, RFC_DCID, True)) is None
    for at in (7, 30, 600, 1199):  # a DCID byte (authenticated header), ciphertext, the tag
        bad = bytearray(packet)
        bad[at] ^= 0x01
        assert quic.open_initial(bytes(bad), quic.long_header(bytes(bad), 0),
                                 quic.initial_keys(version, RFC_DCID, False)) is None


@pytest.mark.parametrize("version, packet", [(quic.V1, V1_SERVER_INITIAL), (quic.V2, V2_SERVER_INITIAL)],
                         ids=["rfc9001-a3", "rfc9369-a3"])
def test_rfc_server_initial_opens_to_a_server_hello(version, packet):
    pkt = quic.long_header(packet, 0)
    assert pkt.kind == "initial" and pkt.scid == bytes.fromhex("f067a5502a4262b5")
    pn, payload = quic.open_initial(packet, pkt, quic.initial_keys(version, RFC_DCID, True))
    assert (pn, payload) == (1, SERVER_PAYLOAD)
    kinds = [(t, v) for t, v in quic.frames(payload)]
    assert [t for t, _ in kinds] == [quic.ACK, quic.CRYPTO]
    sh = tls.server_hello(kinds[1][1][1])
    assert (sh["version"], sh["group"], sh["cipher"], sh["hrr"]) == (0x0304, 0x1D, 0x1301, False)


def test_rfc_vectors_through_a_flow():
    view = FlowView("udp", 50000, 443, [Sample(1, 0.0, True, 0, V1_CLIENT_INITIAL),
                                        Sample(2, 0.1, False, 0, V1_SERVER_INITIAL)])
    facts = Facts()
    quic.inspect(view, facts)
    assert (facts.server_name, facts.key_exchange, facts.key_frames) == ("example.com", "quic", [1, 2])
    assert facts.details["quic_version"] == "0x00000001" and facts.details["tls_version"] == "TLS 1.3"
    assert facts.details["key_share_selected"] == "x25519" and facts.malformed == 0
    assert quic.client_hint(V1_CLIENT_INITIAL, 50000, 4433) is True  # decrypts: a client, whatever the ports
    assert quic.client_hint(V1_SERVER_INITIAL, 4433, 50000) is None


def test_versions_and_salts():
    assert quic.initial_salt(0xFF00001D) == quic.SALT_DRAFT29 and quic.initial_salt(0xFF000020) == quic.SALT_DRAFT29
    assert quic.initial_salt(0xFF00001B) == quic.SALT_DRAFT23 and quic.initial_salt(0xFACEB002) == quic.SALT_DRAFT23
    assert quic.initial_salt(0xFF000022) == quic.SALT_V1 and quic.initial_salt(0xFACEB001) == quic.SALT_DRAFT22
    assert quic.initial_salt(0x51303530) is None and quic.initial_salt(0x1A2A3A4A) is None  # gQUIC, grease
    assert quic.decode_pn(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32  # RFC 9000 §A.3's example


# --- real captures (frame numbers as tshark shows them) ----------------------------------------------------

def quic_row(name):
    [r] = [r for r in analyze_capture(CAPTURES / name)[1] if r["service"] and "quic" in r["service"]]
    return r


@pytest.mark.parametrize("name, sni, version, frames, alpn", [
    # tshark: ClientHello in 7, ServerHello in 8
    ("ndpi_google_meet.pcapng", "meet.google.com", "0x00000001", [7, 8], ["h3"]),
    # tshark: ClientHello in 1 and (after Retry in 2 and HelloRetryRequest in 4) in 5, ServerHellos in 4, 6
    ("ndpi_quic-29.pcap", "localhost", "0xff00001d", [1, 4, 5, 6], ["h3-29"]),
    # mvfst 0xfaceb002 reads with the draft-23..28 salt; tshark: ClientHello in 1, ServerHello in 3
    ("ndpi_quic-mvfst-27.pcapng", "graph.facebook.com", "0xfaceb002", [1, 3], ["h3-fb-05"]),
    ("ndpi_quic-v2.pcapng", "test", "0x6b3343cf", [1, 2], ["h3"]),
    # ClientHello split over the Initials in 1 and 2 (tshark: reassembled in 2), no SNI; ServerHello in 4
    ("ndpi_quic_frags_ch_in_multiple_packets.pcapng", None, "0x00000001", [1, 2, 4], None),
    # CRYPTO fragments out of order over 1-3 (tshark: reassembled in 3); 8-14 retransmit them
    ("zeek_quic-multiple-initial-fragmented-crypto.pcap", "googleads.g.doubleclick.net", "0x00000001",
     [1, 2, 3], ["h3"]),
    ("zeek_quic_interop_quic-go_handshake.pcap", "server4:443", "0x00000001", [5, 6], ["hq-interop"]),
])
def test_real_captures(name, sni, version, frames, alpn):
    r = quic_row(name)
    assert (r["server_name"], r["key_exchange"], r["key_frames"]) == (sni, "quic", frames)
    assert r["details"]["quic_version"] == version and r["role_evidence"] == "protocol"
    if alpn:
        assert r["details"]["alpn"] == alpn
    if sni:
        assert r["server_name_source"] == "sni"


def test_v2_roles_from_decryption_on_unregistered_ports():
    r = quic_row("ndpi_quic-v2.pcapng")
    assert (r["orig_p"], r["resp_p"], r["resp_h"]) == (42086, 4443, "::1")


def test_retry_and_hello_retry_request_in_draft29():
    r = quic_row("ndpi_quic-29.pcap")
    d = r["details"]
    assert d["quic_retry_frames"] == [2] and d["hrr"] is True
    assert d["key_share_offered"] == ["secp256r1"] and d["key_share_selected"] == "x25519"
    assert any("HelloRetryRequest in frame 4" in f and "frame 5" in f for f in r["findings"])


def test_chrome_offers_post_quantum_hybrid_and_ech():
    r = quic_row("zeek_quic-multiple-initial-fragmented-crypto.pcap")
    d = r["details"]
    assert d["key_share_offered"] == ["X25519MLKEM768", "x25519"]
    assert d["post_quantum"] == {"offered": ["X25519MLKEM768"], "selected": None}
    assert d["ech"] is True and d["quic_close"]["frame"] == 15
    assert any("post-quantum" in f and "not captured" in f for f in r["findings"])


# --- synthetic packets: coalescing, reassembly, hostile bytes ----------------------------------------------

def protect(payload: bytes, dcid: bytes, scid: bytes, pn: int, server: bool = False, version: int = quic.V1,
            key_dcid: bytes | None = None, token: bytes = b"") -> bytes:
    """An Initial packet protected as RFC 9001 §5 says (written here independently of quic.open_initial)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, iv, hp = quic.initial_keys(version, key_dcid or dcid, server)
    ptype = 1 if version == quic.V2 else 0
    length = 2 + len(payload) + 16
    header = (bytes([0xC1 | ptype << 4]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
              + bytes([len(scid)]) + scid + bytes([len(token)]) + token + struct.pack("!H", 0x4000 | length)
              + pn.to_bytes(2, "big"))
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, payload, header)
    pn_at = len(header) - 2
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sealed[2:18]) + enc.finalize()
    out = bytearray(header + sealed)
    out[0] ^= mask[0] & 0x0F
    out[pn_at] ^= mask[1]
    out[pn_at + 1] ^= mask[2]
    return bytes(out)


def crypto(offset: int, data: bytes) -> bytes:
    return bytes([quic.CRYPTO]) + struct.pack("!IH", 0x80000000 | offset, 0x4000 | len(data)) + data


def hello_bytes(name: bytes) -> bytes:
    from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
    from scapy.layers.tls.handshake import TLSClientHello
    from scapy.layers.tls.keyexchange_tls13 import KeyShareEntry, TLS_Ext_KeyShare_CH

    return bytes(TLSClientHello(ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=name)]),
                                     TLS_Ext_KeyShare_CH(client_shares=[
                                         KeyShareEntry(group=0x11EC, key_exchange=bytes(1216)),
                                         KeyShareEntry(group=0x1D, key_exchange=bytes(range(32)))])]))


def server_hello_bytes(group: int) -> bytes:
    exts = struct.pack("!HHH", 43, 2, 0x0304) + struct.pack("!HHHH", 51, 4 + 32, group, 32) + bytes(32)
    body = struct.pack("!H", 0x0303) + bytes(range(32)) + b"\x00" + struct.pack("!HB", 0x1301, 0)
    body += struct.pack("!H", len(exts)) + exts
    return bytes([2]) + len(body).to_bytes(3, "big") + body


def udp(src, dst, payload):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload)


def test_split_out_of_order_coalesced_initials_end_to_end(tmp_path):
    ch = hello_bytes(b"zoomcnbj01mmr.cloud.zoom.us")
    dcid, cscid, sscid = bytes.fromhex("0011223344556677"), b"\xaa" * 8, b"\xbb" * 8
    c, s = ("10.0.0.5", 60000), ("52.81.100.10", 7000)  # no well-known port: roles come from decryption
    first = protect(crypto(900, ch[900:]) + bytes(1200 - len(ch) + 900), dcid, cscid, 0)
    # a ClientHello piece, a PING, another piece, then a coalesced Handshake packet the module must skip
    handshake = bytes([0xE0]) + struct.pack("!I", 1) + bytes([8]) + sscid + bytes([8]) + cscid + b"\x40\x20" + bytes(32)
    second = protect(crypto(0, ch[:400]) + b"\x01" + crypto(400, ch[400:900]) + bytes(300), dcid, cscid, 1)
    # the server's Initial: keys from the client's original DCID, though addressed to the client's SCID
    sh = protect(b"\x02\x01\x00\x00\x00" + crypto(0, server_hello_bytes(0x11EC)), cscid, sscid, 0, server=True,
                 key_dcid=dcid)
    frames = [udp(c, s, first), udp(c, s, second + handshake), udp(s, c, sh + bytes(40))]
    [r] = analyze_capture(write_pcap(tmp_path / "quic.pcap", frames))[1]
    assert (r["orig_p"], r["role_evidence"], r["service"]) == (60000, "protocol", "quic")
    assert (r["server_name"], r["key_exchange"], r["key_frames"]) == ("zoomcnbj01mmr.cloud.zoom.us", "quic", [1, 2, 3])
    d = r["details"]
    assert d["post_quantum"] == {"offered": ["X25519MLKEM768"], "selected": "X25519MLKEM768"}
    assert any("post-quantum key exchange X25519MLKEM768 selected" in f and "frame 3" in f for f in r["findings"])


def test_crypto_stream_places_pieces_by_offset_and_credits_frames():
    st = quic.CryptoStream()
    st.add(6, b"ghij", 3)
    st.add(0, b"abcd", 1)
    st.add(2, b"CDEFGH", 2)  # overlaps: the first copy of each byte wins, only new bytes credit frame 2
    assert st.prefix() == b"abcdEFghij"
    assert st.frames(0, 4) == [1] and st.frames(0, 10) == [1, 2, 3] and st.frames(4, 6) == [2]
    st.add(quic.MAX_CRYPTO, b"x", 4)  # beyond the cap: ignored
    assert st.prefix() == b"abcdEFghij"


def test_hostile_lengths_are_counted_not_fatal():
    facts = Facts()
    dcid = b"\x01" * 8
    # a Length field past the datagram
    truncated = bytes([0xC0]) + struct.pack("!I", 1) + b"\x08" + dcid + b"\x00\x00" + b"\x44\x00" + bytes(40)
    # a correctly protected Initial whose CRYPTO frame claims more bytes than the packet holds
    lying = protect(bytes([quic.CRYPTO, 0x00, 0x7F, 0xFF]) + b"\x01" * 1100, dcid, b"", 0)
    # an ACK frame announcing 2**30 ranges
    acks = protect(b"\x02\x00\x00\xbf\xff\xff\xff\x00" + b"\x01" * 1100, dcid, b"", 1)
    view = FlowView("udp", 5000, 443, [Sample(1, 0, True, 0, truncated), Sample(2, 0, True, 0, lying),
                                        Sample(3, 0, True, 0, acks)])
    quic.inspect(view, facts)
    assert facts.malformed == 3 and facts.key_exchange is None


def test_random_corruption_never_raises():
    rng = random.Random(9001)
    pieces = [V1_CLIENT_INITIAL, V2_CLIENT_INITIAL, V1_SERVER_INITIAL]
    for _ in range(300):
        data = bytearray(rng.choice(pieces))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data[:rng.randint(1, len(data))])
        quic.client_hint(data, 5000, 443)
        quic.inspect(FlowView("udp", 5000, 443, [Sample(1, 0, True, 0, data)]), Facts())
