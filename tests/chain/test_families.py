"""The family registry (chain/families.py) against the compiled contracts: every name a descriptor
states (contract, error, getter, event) exists, so that a typo there cannot silently drop a check
of the reconciliation, a problem answer or a dashboard count."""

from __future__ import annotations

from typing import Any

from chain.compiler import CompileResult
from chain.families import (
    FAMILIES,
    Deploy,
    FamilyClients,
    Grant,
    RegisterWallet,
    client_slots,
    contract_errors,
)


def _names(abi: list[dict[str, Any]], kind: str) -> set[str]:
    return {e["name"] for e in abi if e.get("type") == kind}


def test_every_contract_of_a_family_is_compiled_and_deployed_by_its_steps(compiled: CompileResult) -> None:
    for family in FAMILIES:
        deployed = [s.contract for s in family.deploy if isinstance(s, Deploy)]
        assert deployed == list(family.contracts), family.name
        for step in family.deploy:
            assert step.contract in compiled.artifacts
            if isinstance(step, Grant):
                assert step.role in _names(compiled[step.contract].abi, "function"), step
            if isinstance(step, RegisterWallet):
                assert step.contract in family.contracts


def test_every_family_error_is_a_custom_error_of_the_contracts(compiled: CompileResult) -> None:
    declared = set().union(*(_names(a.abi, "error") for a in compiled.artifacts.values()))
    unknown = sorted(set(contract_errors()) - declared)
    assert unknown == []


def test_holdings_panels_and_expected_events_name_what_the_contracts_have(compiled: CompileResult) -> None:
    for family in FAMILIES:
        for h in family.holdings:
            assert h.contract in family.contracts
            functions = _names(compiled[h.contract].abi, "function")
            assert {fn for _, fn in h.views} <= functions, h.contract
        for b in family.backing:
            assert b.contract in family.contracts
            assert {fn for _, fn in b.views} <= _names(compiled[b.contract].abi, "function")
        events = set().union(*(_names(compiled[c].abi, "event") for c in family.contracts))
        events |= _names(compiled["DigitalCash"].abi, "event")
        for t in family.tallies:
            assert t.contract in family.contracts and t.event in events
        if family.panel is not None:
            assert family.panel.needs in family.contracts
            for contract, event in family.panel.counts.values():
                assert contract in family.contracts and event in _names(compiled[contract].abi, "event")
        for kind in family.expected:
            # A kind is named by its family; the holder's channel (a service family with no
            # contract of its own) acts on the contracts of others, so its kinds stand there.
            assert kind.split(".")[0] in {family.name, "cash", "holder"}, kind
    assert [b.contract for f in FAMILIES for b in f.backing] == ["OperatorInstitutions"]


def test_the_typed_client_attributes_are_the_registrys() -> None:
    typed = set(FamilyClients.__annotations__) - {"w3", "manifest", "tx"}
    assert (
        typed
        == set(client_slots())
        == {
            "cash",
            "prepaid",
            "disburse",
            "collective",
            "vouchers",
            "hardwallet",
            "quickpay",
            "refunds",
            "devices",
            "institutions",
        }
    )
