"""Where things live in the project tree."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
NODE_MODULES = PROJECT_ROOT / "node_modules"
BUILD_DIR = PROJECT_ROOT / "build"
VAR_DIR = PROJECT_ROOT / "var"
SOLCJS_WRAPPER = Path(__file__).resolve().parent / "solcjs_wrapper.js"
