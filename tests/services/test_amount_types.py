"""Amounts in fen are integers in every request body of both services (red team, LOW: the
gateway's offline upload took ``"amount": 10.0``). Every field of a request model that holds money
(``amount``, or a name ending ``_fen``) refuses a float, a numeric string and a boolean, even
those pydantic's lax mode would turn into the integer: an amount is what the client meant exactly.

The models are every ``Strict`` request model the two apps load (their routes' bodies), found by
walking the subclasses, so that a new amount field that forgets ``strict=True`` fails here."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

import services.common.refunds  # the refund bodies of both services
import services.gateway.families
import services.operator.families
import services.operator.routes
from services.common.schemas import Strict

assert services.gateway.families.MODULES and services.operator.families.MODULES  # all routes loaded


def _models(cls: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_models(sub)]
    return found


def _is_money(name: str) -> bool:
    return name == "amount" or name.endswith("_fen")


MONEY: list[tuple[str, FieldInfo]] = sorted(
    {
        (f"{m.__module__}.{m.__qualname__}.{name}", info)
        for m in _models(Strict)
        for name, info in m.model_fields.items()
        if _is_money(name)
    },
    key=lambda item: item[0],
)


def test_the_walk_finds_the_amount_fields_of_both_services() -> None:
    names = {name for name, _ in MONEY}
    assert "services.gateway.families.hardwallet.schemas.SignedPaymentIn.amount" in names
    assert "services.operator.families.cash.schemas.IssuanceIn.amount_fen" in names
    assert len(names) >= 40, names


@pytest.mark.parametrize(("name", "info"), MONEY, ids=[name for name, _ in MONEY])
def test_an_amount_field_takes_only_a_json_integer(name: str, info: FieldInfo) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[name-defined]
    assert adapter.validate_json("10") == 10
    for wrong in ("10.0", '"10"', "true"):
        with pytest.raises(ValidationError):
            adapter.validate_json(wrong)
        with pytest.raises(ValidationError):
            adapter.validate_python({"10.0": 10.0, '"10"': "10", "true": True}[wrong])
