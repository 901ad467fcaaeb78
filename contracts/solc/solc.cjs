#!/usr/bin/env node
// A `solc` command over solc-js (WebAssembly), for forge and ape-solidity on machines
// that cannot download a native compiler. It answers the two calls they make:
//   solc --version
//   solc --standard-json [--base-path P] [--allow-paths P,...] [--include-path P ...]
// Imports are read from the base path and the include paths, in that order.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

function parseArgs(argv) {
  const opts = { standardJson: false, version: false, basePath: process.cwd(), includePaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (flag === '--version' || flag === '-v') opts.version = true;
    else if (flag === '--standard-json') opts.standardJson = true;
    else if (flag === '--base-path') opts.basePath = value();
    else if (flag === '--include-path') opts.includePaths.push(value());
    else if (flag === '--allow-paths') value();
    else if (flag.startsWith('-')) { /* flags without meaning for a standard-json run */ }
  }
  return opts;
}

function importCallback(roots) {
  return (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.resolve(r, importPath));
    for (const file of candidates) {
      if (fs.existsSync(file) && fs.statSync(file).isFile()) return { contents: fs.readFileSync(file, 'utf8') };
    }
    return { error: `File not found: ${importPath} (looked in ${roots.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!opts.standardJson) {
    process.stderr.write('this solc is a wrapper over solc-js: only --version and --standard-json are supported\n');
    return 2;
  }
  const input = fs.readFileSync(0, 'utf8');
  const roots = [opts.basePath, ...opts.includePaths, process.cwd()];
  process.stdout.write(solc.compile(input, { import: importCallback(roots) }));
  return 0;
}

process.exitCode = main();
