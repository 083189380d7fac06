"""What a receiver without ccvault (the police, a court) checks a bundle with: standard tools.

`SHA256SUMS` lists every file of the bundle but the two signatures and itself, in the format
`sha256sum -c` reads; `SHA256SUMS.sig` is the installation's Ed25519 signature over its exact
bytes, which OpenSSL 3 checks (`pkeyutl -verify -rawin`) against `signer.pem`, the public key.
So the signature covers the list, the list covers every file — the manifest included — and the
receiver's only trust decision is the key: `README.txt` (Japanese and English) gives the
fingerprint to compare with the one the installation handed over separately, the command that
prints signer.pem's, and the two checks.

The fingerprint is SHA-256 of the raw 32-byte key (what the audit log and `ccvault
signing-key` show); an Ed25519 public key's DER form ends with those 32 bytes, hence `tail -c 32`.
"""

from __future__ import annotations

import re

SUMS, SUMS_SIG, SIGNER, README = "SHA256SUMS", "SHA256SUMS.sig", "signer.pem", "README.txt"
FINGERPRINT_CMD = f"openssl pkey -pubin -in {SIGNER} -outform DER | tail -c 32 | sha256sum"
SIGNATURE_CMD = (
    f"openssl pkeyutl -verify -pubin -inkey {SIGNER} -rawin -in {SUMS} -sigfile {SUMS_SIG}"
)
SUMS_CMD = f"sha256sum -c {SUMS}"
MAX_SUMS_BYTES = 16 << 20  # a month of one-minute segments is ~4 MB
_LINE = re.compile(r"([0-9a-f]{64})  ([^\\\n\r]+)")


def sums_text(hashes: dict[str, str]) -> bytes:
    """`<sha256>  <name>` per file, sorted by name: what GNU `sha256sum` writes and `-c`
    reads. Names needing sha256sum's escaping (a backslash or a newline) never occur: a bundle
    names its files itself."""
    lines = []
    for name in sorted(hashes):
        if not _LINE.fullmatch(f"{hashes[name]}  {name}"):
            raise ValueError(f"cannot list {name!r} in {SUMS}")
        lines.append(f"{hashes[name]}  {name}\n")
    return "".join(lines).encode()


def parse_sums(data: bytes) -> dict[str, str]:
    """name → SHA-256 from a SHA256SUMS file; ValueError naming the first bad line."""
    out: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", "strict").split("\n")[:-1], 1):
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"line {number} is not `<sha256>  <name>`")
        if match.group(2) in out:
            raise ValueError(f"line {number} lists {match.group(2)} a second time")
        out[match.group(2)] = match.group(1)
    if not data.endswith(b"\n") and data:
        raise ValueError("the last line is cut off")
    return out


CONTENTS = (
    """segments/ holds the original recorded files, clip.mp4 the range joined into one file (copied,
not re-encoded), manifest.json what they are (camera, times, who exported them and why);
manifest.sig is the manifest's own signature by the same key.""",
    """segments/ は録画された元のファイル、clip.mp4 は範囲を一つにつないだファイル（再エンコード
なし）、manifest.json はその内容（カメラ、時刻、書き出した人と理由）です。manifest.sig は
同じ鍵による manifest.json の署名です。""",
)
VISIT_CONTENTS = (
    """segments/ holds the original recorded files of each camera (<camera>-<file>),
clip-<camera>.mp4 each camera's range joined into one file (copied, not re-encoded),
manifest.json what they are (the visit, every door event of its room in the range, cameras,
times, who exported them and why); manifest.sig is the manifest's own signature by the same
key.""",
    """segments/ は各カメラの録画された元のファイル（<カメラ>-<ファイル>）、clip-<カメラ>.mp4 は
カメラごとに範囲を一つにつないだファイル（再エンコードなし）、manifest.json はその内容（入室記録、
その部屋の範囲内のすべての扉イベント、カメラ、時刻、書き出した人と理由）です。manifest.sig は
同じ鍵による manifest.json の署名です。""",
)


def readme(
    camera: str, export_id: int, footage: str, fingerprint: str, visit: int | None = None
) -> str:
    """The receiver's instructions, English then Japanese, with the same three commands; a
    visit's bundle (`visit`) says so, and what its files are."""
    contents_en, contents_ja = CONTENTS if visit is None else VISIT_CONTENTS
    what = (
        f"camera / カメラ: {camera}"
        if visit is None
        else f"visit / 入室: {visit}    cameras / カメラ: {camera}"
    )
    return f"""ccvault evidence bundle / 証拠バンドル
{what}    export / 書き出し: {export_id}    {footage} (UTC)

[English]
To check this bundle without ccvault (any system with coreutils and OpenSSL 3), run these
commands in this directory.

1. Who signed it. The bundle names the signer's key fingerprint
     {fingerprint}
   Compare it with the fingerprint the recording site gave you separately
   (`ccvault signing-key` prints it there), and check that signer.pem is that key; this
   prints its fingerprint:
     {FINGERPRINT_CMD}
   If they differ, or the site gave you none, the bundle does not prove who made it.
2. The signature over the list of files; it must say "Signature Verified Successfully":
     {SIGNATURE_CMD}
3. Every file against the list; every line must end in OK:
     {SUMS_CMD}

{contents_en}

[日本語]
ccvault がなくても、coreutils と OpenSSL 3 があればこのバンドルを検証できます。このディレクトリで
次のコマンドを実行してください。

1. 署名者の確認。このバンドルが示す署名者の鍵のフィンガープリントは
     {fingerprint}
   です。録画した現場から別の経路で受け取ったフィンガープリント（現場で `ccvault signing-key`
   が表示します）と照合し、signer.pem がその鍵であることを確かめてください。signer.pem の
   フィンガープリントは次のコマンドで表示されます:
     {FINGERPRINT_CMD}
   一致しない場合、または現場から受け取っていない場合、このバンドルは作成者を証明しません。
2. ファイル一覧の署名の検証。「Signature Verified Successfully」と表示されること:
     {SIGNATURE_CMD}
3. 一覧と各ファイルの照合。すべての行が OK で終わること:
     {SUMS_CMD}

{contents_ja}
"""
