// Signs gpuspot orders with MetaMask's own EIP-712 implementation (@metamask/eth-sig-util, what
// eth_signTypedData_v4 runs in the wallet), for the intake tests' cross-check.
// stdin: [{"privateKey": hex (no 0x), "data": typed data}, ...]   stdout: ["0x" + 65-byte signature hex, ...]
// Run with NODE_PATH=contracts/node_modules.
const { signTypedData, SignTypedDataVersion } = require('@metamask/eth-sig-util');

let input = '';
process.stdin.on('data', chunk => (input += chunk));
process.stdin.on('end', () => {
  const requests = JSON.parse(input);
  const signatures = requests.map(({ privateKey, data }) =>
    signTypedData({ privateKey: Buffer.from(privateKey, 'hex'), data, version: SignTypedDataVersion.V4 }),
  );
  process.stdout.write(JSON.stringify(signatures));
});
