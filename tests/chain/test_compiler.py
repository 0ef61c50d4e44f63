"""The compiler front: pinned settings, the artifact cache, readable Solidity errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.compiler import EVM_VERSION, SOLC_VERSION, CompileResult, compile_contracts, find_solc
from chain.exceptions import CompilationError


@pytest.fixture(scope="module")
def fresh_compile(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompileResult, Path]:
    """One compile of the whole tree into an empty build directory (the slowest step of this
    module, several minutes on a loaded machine), shared by the two tests that need one."""
    build_dir = tmp_path_factory.mktemp("build")
    return compile_contracts(build_dir=build_dir), build_dir


def test_compiles_every_family_with_the_pinned_compiler(fresh_compile: tuple[CompileResult, Path]) -> None:
    result, _ = fresh_compile
    assert not result.from_cache
    assert {"WalletRegistry", "DigitalCash", "PlainERC20"} <= set(result.artifacts)
    assert result["DigitalCash"].bytecode.startswith("0x60")
    assert (SOLC_VERSION, EVM_VERSION) == ("0.8.30", "cancun")


def test_second_compile_does_not_invoke_solc(
    fresh_compile: tuple[CompileResult, Path], tmp_path: Path
) -> None:
    first, build_dir = fresh_compile
    # A compiler that cannot run: if the cache were missed this call would fail.
    second = compile_contracts(build_dir=build_dir, solc_binary=tmp_path / "no-such-solc")
    assert second.from_cache
    assert second.cache_file == first.cache_file
    assert second["DigitalCash"].bytecode == first["DigitalCash"].bytecode


def test_changed_source_misses_the_cache(tmp_path: Path) -> None:
    src = tmp_path / "contracts"
    (src / "x").mkdir(parents=True)
    file = src / "x" / "Tiny.sol"
    file.write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity 0.8.30;\ncontract Tiny { uint256 public a; }\n"
    )
    first = compile_contracts(contracts_dir=src, build_dir=tmp_path / "build")
    file.write_text(file.read_text().replace("uint256 public a;", "uint256 public b;"))
    second = compile_contracts(contracts_dir=src, build_dir=tmp_path / "build")
    assert not second.from_cache
    assert first.cache_file != second.cache_file


def test_solidity_error_names_file_line_and_message(tmp_path: Path) -> None:
    src = tmp_path / "contracts"
    (src / "bad").mkdir(parents=True)
    (src / "bad" / "Broken.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity 0.8.30;\n"
        "contract Broken {\n  function f() public { undefinedThing = 1; }\n}\n"
    )
    with pytest.raises(CompilationError) as info:
        compile_contracts(contracts_dir=src, build_dir=tmp_path / "build")
    message = str(info.value)
    assert "contracts/bad/Broken.sol:4:" in message
    assert "Undeclared identifier" in message


def test_falls_back_to_the_solcjs_wrapper_or_a_native_pinned_solc() -> None:
    binary = find_solc()
    assert binary.exists()
