"""The agency registry: the packaged Northshire default and errors for bad registry files."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import AgencyKind
from hub.registry import Agency, AgencyRegistry, RegistryError, UnknownAgency

pytestmark = pytest.mark.unit

ONE_AGENCY = "agencies:\n  - id: acme-police\n    kind: police\n    name: Acme Police\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agencies.yaml"
    path.write_text(text, "utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(RegistryError) as caught:
        AgencyRegistry.load(path)
    return str(caught.value)


class TestPackagedRegistry:
    """The packaged default is the Northshire demo area, one agency of each kind."""

    def test_exactly_the_four_northshire_agencies(self) -> None:
        """Police, health, a primary school and children's services, in file order."""
        assert AgencyRegistry.load().all() == [
            Agency("northshire-police", AgencyKind.police, "Northshire Police"),
            Agency("northshire-health", AgencyKind.health, "Northshire Hospitals NHS Trust"),
            Agency("northshire-primary", AgencyKind.schools, "Northshire Primary School"),
            Agency(
                "northshire-cs",
                AgencyKind.childrens_services,
                "Northshire Council Children's Services",
            ),
        ]

    def test_lookup_and_membership(self) -> None:
        """A registered id is found and contained; an unknown one is neither."""
        registry = AgencyRegistry.load()
        assert registry.get("northshire-health").kind is AgencyKind.health
        assert "northshire-health" in registry
        assert "acme-police" not in registry

    def test_unknown_agency_names_it(self) -> None:
        """Looking up an unknown id raises UnknownAgency carrying the id."""
        with pytest.raises(UnknownAgency) as caught:
            AgencyRegistry.load().get("acme-police")
        assert str(caught.value) == "agency 'acme-police' is not registered"
        assert caught.value.agency_id == "acme-police"


class TestRegistryFile:
    """A registry file of one's own is read, and every fault is a RegistryError saying what."""

    def test_valid_file(self, tmp_path: Path) -> None:
        """A well-formed file gives its agencies."""
        registry = AgencyRegistry.load(write(tmp_path, ONE_AGENCY))
        assert registry.all() == [Agency("acme-police", AgencyKind.police, "Acme Police")]

    def test_bad_yaml(self, tmp_path: Path) -> None:
        """Text that is not YAML: the file and the parser's complaint."""
        path = write(tmp_path, "agencies: [\n  - id: x")
        assert load_error(path) == (
            f"{path} is not valid YAML: while parsing a flow node\n"
            "expected the node content, but found '-'\n"
            '  in "<unicode string>", line 2, column 3:\n'
            "      - id: x\n"
            "      ^"
        )

    def test_unknown_kind(self, tmp_path: Path) -> None:
        """A kind that is not an agency kind: its location and the allowed kinds."""
        path = write(tmp_path, ONE_AGENCY.replace("kind: police", "kind: fire"))
        assert load_error(path) == (
            f"{path} is not a valid agency registry: agencies.0.kind: Input should be "
            "'police', 'health', 'schools' or 'childrens_services'"
        )

    def test_unknown_field(self, tmp_path: Path) -> None:
        """An attribute the registry does not know is refused, not ignored."""
        path = write(tmp_path, ONE_AGENCY + "    phone: '01632 960000'\n")
        assert load_error(path) == (
            f"{path} is not a valid agency registry: agencies.0.phone: "
            "Extra inputs are not permitted"
        )

    def test_no_agencies(self, tmp_path: Path) -> None:
        """An empty agency list is refused."""
        path = write(tmp_path, "agencies: []\n")
        assert load_error(path) == (
            f"{path} is not a valid agency registry: agencies: "
            "List should have at least 1 item after validation, not 0"
        )

    def test_duplicate_id(self, tmp_path: Path) -> None:
        """The same id twice names the id."""
        path = write(tmp_path, ONE_AGENCY + ONE_AGENCY.removeprefix("agencies:\n"))
        assert load_error(path) == f"{path}: agency id 'acme-police' is registered twice"

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that does not exist: its path and the OS's reason."""
        path = tmp_path / "nowhere.yaml"
        assert load_error(path) == (
            f"cannot read agency registry {path}: No such file or directory"
        )

    def test_directory_instead_of_file(self, tmp_path: Path) -> None:
        """A directory where the file should be: its path and the OS's reason."""
        assert load_error(tmp_path) == f"cannot read agency registry {tmp_path}: Is a directory"

    def test_file_not_utf8(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 text is a RegistryError naming the file."""
        path = tmp_path / "agencies.yaml"
        path.write_bytes(ONE_AGENCY.replace("Acme", "Caf\xe9").encode("latin-1"))
        message = load_error(path)
        assert message == f"agency registry {path} is not UTF-8 text"
