// Reads {dump, values, leafEncoding} as JSON on stdin and answers, using @openzeppelin/merkle-tree
// itself: the root and every proof of StandardMerkleTree.load(dump), and the root and dump of
// StandardMerkleTree.of(values, leafEncoding) (the tree the library builds from the same values).
'use strict';
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const { dump, values, leafEncoding } = JSON.parse(input);
  const loaded = StandardMerkleTree.load(dump);
  const proofs = [];
  const verified = [];
  for (const [i, value] of loaded.entries()) {
    const proof = loaded.getProof(i);
    proofs.push(proof);
    verified.push(StandardMerkleTree.verify(loaded.root, leafEncoding, value, proof));
  }
  const built = StandardMerkleTree.of(values, leafEncoding);
  process.stdout.write(JSON.stringify({
    loadedRoot: loaded.root, proofs, verified, builtRoot: built.root, builtDump: built.dump(),
  }));
});
