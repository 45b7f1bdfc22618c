// CRC-32 (IEEE 802.3, the polynomial zlib and the block engine use) in plain TypeScript, so that
// the simulator's disk can checksum blocks without node:zlib: src/sim stays free of I/O modules
// (CONVENTIONS.md item 6), and a checksum computed here equals the engine's for the same bytes,
// so a simulated copy and a real one compare by checksum.

const table = new Uint32Array(256);
for (let byte = 0; byte < 256; byte++) {
  let value = byte;
  for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
  table[byte] = value >>> 0;
}

/** The CRC-32 of `bytes`, continuing from `previous` (0 to start), as an unsigned 32-bit number. */
export function crc32(bytes: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0;
  for (let index = 0; index < bytes.length; index++) {
    crc = table[(crc ^ bytes[index]!) & 0xff]! ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}
