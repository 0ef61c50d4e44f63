#!/usr/bin/env node
// A stand-in for a native `solc` binary, backed by the npm `solc` package (solc-js).
//
// py-solc-x (and crytic-compile) run `solc --version` and `solc --standard-json` with the input
// on stdin. Plain `solcjs` prints a banner before its JSON, so it cannot be used as is; this
// wrapper answers those two calls exactly the way the native binary does, resolves imports
// from the base and include paths (and the current directory), and ignores flags it does not
// need (--allow-paths and the like).
"use strict";
const fs = require("fs");
const path = require("path");

const projectRoot = path.resolve(__dirname, "..");
const solc = require(path.join(projectRoot, "node_modules", "solc"));

const args = process.argv.slice(2);

if (args.includes("--version")) {
  process.stdout.write(
    "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n",
  );
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write("solcjs_wrapper: only --version and --standard-json are supported\n");
  process.exit(2);
}

const roots = [];
for (let i = 0; i < args.length; i++) {
  if ((args[i] === "--base-path" || args[i] === "--include-path") && args[i + 1]) {
    roots.push(path.resolve(args[i + 1]));
    i++;
  }
}
roots.push(process.cwd(), projectRoot);

function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.isAbsolute(importPath) ? importPath : path.join(root, importPath);
    if (fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: "File not found: " + importPath + " (searched " + roots.join(", ") + ")" };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
process.stdout.write("\n");
