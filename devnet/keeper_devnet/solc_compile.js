// Compiles a Solidity standard-JSON input read from stdin with the pinned solcjs named in argv[2]
// ("solc" or an alias such as "solc_0_8_19"), resolving imports from node_modules and the repo.
// Prints the standard-JSON output on stdout.
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..', '..');
const solc = require(path.join(root, 'node_modules', process.argv[2] || 'solc'));
const input = fs.readFileSync(0, 'utf8');
function findImports(p) {
  for (const base of [path.join(root, 'node_modules'), root]) {
    const f = path.join(base, p);
    if (fs.existsSync(f)) return { contents: fs.readFileSync(f, 'utf8') };
  }
  return { error: 'not found: ' + p };
}
process.stdout.write(solc.compile(input, { import: findImports }));
