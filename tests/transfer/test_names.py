"""Mailbox names as file names (transfer/names.py): reversible, one-to-one, never a path trick."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from postoffice.transfer.names import (
    mailbox_of_maildir_folder,
    mailbox_of_mbox_path,
    maildir_folder_name,
    mbox_path_parts,
)

# Names made of the characters that matter most, so collisions and tricks are likely.
names = st.text(alphabet=st.sampled_from(list("./\\%aA.xmbo\x00\x01\x7f é&-")), max_size=14)


def safe_component(part: str) -> bool:
    return part not in ("", ".", "..") and "/" not in part and "\x00" not in part


@given(names)
def test_mbox_paths_are_safe_and_read_back(name: str) -> None:
    parts = mbox_path_parts(name)
    assert all(safe_component(p) and not p.startswith(".") for p in parts)
    assert parts[-1].endswith(".mbox") and not any(p.lower().endswith(".mbox") for p in parts[:-1])
    assert mailbox_of_mbox_path(parts) == name


@given(names)
def test_maildir_folders_are_safe_and_read_back(name: str) -> None:
    folder = maildir_folder_name(name)
    assert safe_component(folder) and folder.startswith(".")
    assert mailbox_of_maildir_folder(folder) == name


@given(names, names)
def test_two_names_never_share_a_file(a: str, b: str) -> None:
    if a != b:
        assert mbox_path_parts(a) != mbox_path_parts(b)
        assert maildir_folder_name(a) != maildir_folder_name(b)
