"""Issue 14, item 8: `/api/status` names no server path. It sent each volume's `path` — where
the footage lies on the server's disks — to every signed-in viewer, and an unavailable volume's
`reason` may name it too. The API never sends a path, to any role (`routes_admin.api_status`);
`ccvault status` on the host still shows them."""

from __future__ import annotations

from pathlib import Path

from tests.api_peer import serve
from tests.conftest import cli_json, write_config


def test_status_names_no_server_path_to_any_role(tmp_path: Path) -> None:
    hot, archive = tmp_path / "disks" / "hot", tmp_path / "disks" / "archive"
    config = write_config(
        tmp_path,
        [{"name": "door", "url": "demo://", "enabled": False}],
        volumes=[
            {"name": "hot", "path": str(hot), "role": "hot"},
            # Not a mount point here: unavailable, and its reason would name the path.
            {
                "name": "archive",
                "path": str(archive),
                "role": "archive",
                "require_mountpoint": True,
            },
        ],
    )
    archive.mkdir(parents=True)
    with serve(config) as api:
        for role in ("viewer", "operator", "admin"):
            answer = api.client(role).get("/api/status")
            assert answer.status_code == 200, answer.text
            volumes = {v["name"]: v for v in answer.json()["volumes"]}
            assert set(volumes) == {"hot", "archive"} and volumes["archive"]["state"]
            assert all("path" not in v for v in volumes.values()), (role, volumes)
            assert volumes["archive"]["reason"], "the reason itself is kept"
            for text in (str(tmp_path), str(hot), str(archive), "/disks/"):
                assert text not in answer.text, (role, text)
    on_host = {v["name"]: v for v in cli_json(config, "status")["volumes"]}
    assert on_host["archive"]["path"] == str(archive)  # the host's own view keeps them
