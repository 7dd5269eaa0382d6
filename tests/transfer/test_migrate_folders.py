"""Where a migration puts each folder (transfer/migrate_folders.py): names in, names out."""
from __future__ import annotations

import pytest

from postoffice.transfer.migrate_folders import FolderInfo, parse_maps, plan_folders
from postoffice.transfer.source import TransferError


def targets(sources: list[FolderInfo], destination: list[FolderInfo] | None = None,
            maps: dict[str, str] | None = None) -> dict[str, str | None]:
    return {p.source.name: p.target for p in plan_folders(sources, destination or [], maps or {})}


def test_gmail_folders_go_by_special_use_and_its_views_are_left_out() -> None:
    gmail = [FolderInfo("INBOX"), FolderInfo("[Gmail]/Sent Mail", "\\Sent"), FolderInfo("[Gmail]/Drafts", "\\Drafts"),
             FolderInfo("[Gmail]/Trash", "\\Trash"), FolderInfo("[Gmail]/Spam", "\\Junk"),
             FolderInfo("[Gmail]/All Mail", "\\All"), FolderInfo("[Gmail]/Starred", "\\Flagged"),
             FolderInfo("Receipts")]
    assert targets(gmail) == {"INBOX": "INBOX", "[Gmail]/Sent Mail": "Sent", "[Gmail]/Drafts": "Drafts",
                              "[Gmail]/Trash": "Trash", "[Gmail]/Spam": "Junk", "[Gmail]/All Mail": None,
                              "[Gmail]/Starred": None, "Receipts": "Receipts"}


def test_the_destinations_own_special_use_folder_wins_over_the_usual_name() -> None:
    assert targets([FolderInfo("Sent", "\\Sent")], [FolderInfo("Gesendet", "\\Sent")]) == {"Sent": "Gesendet"}


def test_names_every_client_knows_are_mapped_without_special_use() -> None:
    assert targets([FolderInfo("Sent Items"), FolderInfo("INBOX/Deleted Messages"), FolderInfo("Projects/Archive"),
                    FolderInfo("inbox")]) == {"Sent Items": "Sent", "INBOX/Deleted Messages": "Trash",
                                              "Projects/Archive": "Projects/Archive", "inbox": "INBOX"}


def test_map_moves_a_folder_and_its_subfolders_and_beats_special_use() -> None:
    sources = [FolderInfo("Old"), FolderInfo("Old/2023"), FolderInfo("Older"), FolderInfo("[Gmail]/All Mail", "\\All")]
    maps = parse_maps(["Old=Archive/Old", "[Gmail]/All Mail=Everything"])
    assert targets(sources, maps=maps) == {"Old": "Archive/Old", "Old/2023": "Archive/Old/2023", "Older": "Older",
                                           "[Gmail]/All Mail": "Everything"}


@pytest.mark.parametrize("bad", ["nothing", "=B", "A=", "/=/"])
def test_a_map_not_of_the_form_a_equals_b_is_refused(bad: str) -> None:
    with pytest.raises(TransferError, match="SOURCE=DESTINATION"):
        parse_maps([bad])
