"""Repo ids, account names, paths in a repo and subdomains (spaces.domain.naming)."""

from __future__ import annotations

import re

import pytest

from spaces.domain.naming import (
    RESERVED_NAMESPACES,
    subdomain_candidates,
    subdomain_for,
    validate_account_name,
    validate_folder_path,
    validate_name,
    validate_path_in_repo,
    validate_repo_id,
)
from spaces.errors import BadRequest, InvalidPath, InvalidRepoId

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@pytest.mark.parametrize(
    ("repo_id", "expected"),
    [
        ("alice/demo", ("alice", "demo")),
        ("Tongyi-MAI/Z-Image-Turbo", ("Tongyi-MAI", "Z-Image-Turbo")),
        ("stabilityai/stable-diffusion-3.5-large", ("stabilityai", "stable-diffusion-3.5-large")),
        ("a_b/c_d", ("a_b", "c_d")),
        ("_x/_y_", ("_x", "_y_")),
        ("123/456", ("123", "456")),
        ("a" * 96 + "/" + "b" * 96, ("a" * 96, "b" * 96)),
        ("api/demo", ("api", "demo")),  # reserved names are refused at account creation, not on lookup
    ],
)
def test_valid_repo_ids(repo_id: str, expected: tuple[str, str]) -> None:
    assert validate_repo_id(repo_id) == expected


@pytest.mark.parametrize(
    ("repo_id", "fragment"),
    [
        ("demo", "exactly one '/'"),
        ("a/b/c", "exactly one '/'"),
        ("", "exactly one '/'"),
        ("/demo", "namespace is empty"),
        ("alice/", "name is empty"),
        ("alice/foo--bar", "'--' or '..'"),
        ("alice/foo..bar", "'--' or '..'"),
        ("al--ice/demo", "'--' or '..'"),
        ("alice/demo.git", "'.git'"),
        ("alice/-demo", "start or end with '-' or '.'"),
        ("alice/demo-", "start or end with '-' or '.'"),
        (".alice/demo", "start or end with '-' or '.'"),
        ("alice/demo.", "start or end with '-' or '.'"),
        ("alice/dé mo", "non-ASCII"),
        ("alice/de mo", "contains ' '"),
        ("alice/de$mo", "contains '$'"),
        ("alice/" + "b" * 97, "maximum is 96"),
    ],
)
def test_invalid_repo_ids(repo_id: str, fragment: str) -> None:
    with pytest.raises(InvalidRepoId) as info:
        validate_repo_id(repo_id)
    assert fragment in info.value.message
    assert "e.g. 'alice/my-space'" in info.value.message or "maximum" in info.value.message
    assert info.value.status == 400 and info.value.code == "InvalidRepoId"


def test_invalid_repo_id_message_names_the_id_and_part() -> None:
    with pytest.raises(InvalidRepoId, match=r"Invalid repo id 'alice/foo--bar': The name 'foo--bar'"):
        validate_repo_id("alice/foo--bar")


def test_validate_name_uses_what_in_message() -> None:
    assert validate_name("alice", "username") == "alice"
    with pytest.raises(InvalidRepoId, match="The username '-x'"):
        validate_name("-x", "username")


@pytest.mark.parametrize(
    "name", ["templates", "hardware", "semantic-search", "zero-gpu", "api", "spaces", "models", "datasets", "new",
             "settings", "login", "logout", "signup", "admin", "static", "docs", "API", "Hardware"]
)
def test_reserved_namespaces_refused_as_accounts(name: str) -> None:
    assert name.lower() in RESERVED_NAMESPACES
    with pytest.raises(InvalidRepoId, match="reserved"):
        validate_account_name(name)


@pytest.mark.parametrize("name", ["alice", "acme-corp", "hardware2", "my_org"])
def test_ordinary_account_names_accepted(name: str) -> None:
    assert validate_account_name(name, "organization") == name


@pytest.mark.parametrize(
    "path",
    ["app.py", "src/app.py", "a/b/c/d.txt", ".gitattributes", ".gitignore", ".github/workflows/x.yml",
     ".cache/x", "dir with space/f.txt", "ünïcode.txt", "a.git/b", "x" * 1024,
     "a\\b.py", "folder/..\\..\\file", "a/..\\x"],  # backslashes are file name characters, as on the Hub
)
def test_valid_paths(path: str) -> None:
    assert validate_path_in_repo(path) == path


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("", "empty"),
        ("/etc/passwd", "leading '/'"),
        ("..\\x", "cannot start with '..\\'"),
        ("a\\.git\\config", "'.git' folder"),
        ("../x", "'..' segments"),
        ("a/../../x", "'..' segments"),
        ("a/..", "'..' segments"),
        ("./app.py", "'.' segments"),
        ("a/./b", "'.' segments"),
        ("a//b", "empty path segment"),
        ("a/", "empty path segment"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("a\x7fb", "control characters"),
        (".git/config", "'.git' folder"),
        ("sub/.git/hooks/pre-commit", "'.git' folder"),
        (".GIT/config", "'.git' folder"),
        ("x/.Git/y", "'.git' folder"),
        (".git", "'.git' folder"),
        (".git./x", "'.git' folder"),
        ("x" * 1025, "1024 bytes"),
        ("é" * 513, "1024 bytes"),  # 1026 bytes in UTF-8
    ],
)
def test_invalid_paths(path: str, fragment: str) -> None:
    with pytest.raises(InvalidPath) as info:
        validate_path_in_repo(path)
    assert fragment in info.value.message
    assert isinstance(info.value, BadRequest)
    if path and len(path) < 40:
        assert repr(path) in info.value.message  # the message names the path


@pytest.mark.parametrize(("path", "expected"), [("models/", "models"), ("a/b/", "a/b"), ("a/b", "a/b")])
def test_valid_folder_paths(path: str, expected: str) -> None:
    assert validate_folder_path(path) == expected


@pytest.mark.parametrize(
    ("path", "fragment"),
    [("/", "leading '/'"), ("", "empty"), ("a//", "empty path segment"), ("../", "'..'"), (".git/", "'.git'"),
     ("..\\b/", "'..\\'")],
)
def test_invalid_folder_paths(path: str, fragment: str) -> None:
    with pytest.raises(InvalidPath) as info:
        validate_folder_path(path)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("repo_id", "subdomain"),
    [
        # observed on huggingface.co (wire reference §8.8)
        ("stabilityai/stable-diffusion-3.5-large", "stabilityai-stable-diffusion-3-5-large"),
        ("Tongyi-MAI/Z-Image-Turbo", "tongyi-mai-z-image-turbo"),
        ("NimaBoscarino/hotdog-gradio", "nimaboscarino-hotdog-gradio"),
        # runs of non-alphanumerics collapse; ends are trimmed
        ("a_b/c__d", "a-b-c-d"),
        ("_alice_/_demo_", "alice-demo"),
        ("a-b/c", "a-b-c"),
        ("a/b-c", "a-b-c"),
    ],
)
def test_subdomain_for(repo_id: str, subdomain: str) -> None:
    assert subdomain_for(repo_id) == subdomain
    assert subdomain_candidates(repo_id)[0] == subdomain


def test_long_subdomain_is_truncated_with_hash() -> None:
    repo_id = "averyveryverylongorganizationname/" + "an-extremely-long-space-name" * 3
    sub = subdomain_for(repo_id)
    assert len(sub) <= 63 and DNS_LABEL.match(sub)
    assert sub.startswith("averyveryverylongorganizationname-an-extremely")
    assert re.search(r"-[0-9a-f]{8}$", sub)
    # deterministic and case-insensitive (repo ids are unique ignoring case)
    assert subdomain_for(repo_id) == subdomain_for(repo_id.upper()) == sub
    other = repo_id[:-1] + "x"
    assert subdomain_for(other) != sub  # same 54-character head, different hash


def test_exactly_63_characters_is_kept_plain() -> None:
    repo_id = "a" * 31 + "/" + "b" * 31
    assert subdomain_for(repo_id) == "a" * 31 + "-" + "b" * 31
    assert len(subdomain_for(repo_id + "b")) == 63 and subdomain_for(repo_id + "b").count("-") == 2


def test_all_punctuation_id_still_gets_a_label() -> None:
    sub = subdomain_for("_/_")
    assert DNS_LABEL.match(sub) and len(sub) == 8


@pytest.mark.parametrize("repo_id", ["a-b/c", "a/b-c", "alice/demo", "x" * 96 + "/" + "y" * 96, "_/_"])
def test_candidates_are_distinct_dns_labels(repo_id: str) -> None:
    candidates = subdomain_candidates(repo_id)
    assert len(candidates) == len(set(candidates)) >= 2
    assert all(len(c) <= 63 and DNS_LABEL.match(c) for c in candidates)


def test_colliding_ids_get_different_second_candidates() -> None:
    first, second = subdomain_candidates("a-b/c"), subdomain_candidates("a/b-c")
    assert first[0] == second[0] == "a-b-c"
    assert first[1] != second[1]
    assert first[1].startswith("a-b-c-") and len(first[1]) == len("a-b-c-") + 8


def test_a_leading_dotdot_backslash_is_refused_with_422_like_the_hub() -> None:
    with pytest.raises(InvalidPath) as info:
        validate_path_in_repo("..\\x")
    assert info.value.status == 422
