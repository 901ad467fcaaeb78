// Reference answers from the real @openzeppelin/merkle-tree, for the Python port's cross-check.
// stdin: {"encoding": [...types], "values": [[...], ...], "sortLeaves": bool, "multiproofs": [[index, ...], ...],
//         "proofs": [index, ...]}   (integers as decimal strings, bytes as 0x hex)
// stdout: {"root", "dump", "proofs": [[hex...]...], "multiproofs": [{"leaves", "proof", "proofFlags"}...],
//          "leafHashes": [hex...]}
// Run with NODE_PATH=contracts/node_modules so the library resolves from the contracts' npm install.
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

let input = '';
process.stdin.on('data', chunk => (input += chunk));
process.stdin.on('end', () => {
  const request = JSON.parse(input);
  const tree = StandardMerkleTree.of(request.values, request.encoding, { sortLeaves: request.sortLeaves });
  const out = {
    root: tree.root,
    dump: tree.dump(),
    leafHashes: request.values.map(v => tree.leafHash(v)),
    proofs: (request.proofs || []).map(i => tree.getProof(i)),
    multiproofs: (request.multiproofs || []).map(indices => tree.getMultiProof(indices)),
  };
  process.stdout.write(JSON.stringify(out));
});
