// glibc malloc settings for the processes that receive block payloads: the volume server (started
// by the agent) and the NBD server of the benchmarks. They receive into 256 KiB slabs
// (slab-receive.ts) that are dropped once their payloads are written, several per mebibyte
// written. With glibc's defaults such a block is mapped on its own or lands at the top of the heap,
// and is given back to the kernel when freed (munmap, or a heap trim once 2x the dynamic mmap
// threshold is free at the top); the next slab then takes a page fault for each 4 KiB the kernel
// receives into. Served from the heap and kept there, the same pages are reused with no fault.
//
// Measured (2026-12-03, serve-raw-file.js --io sync, fio 1 MiB writes at depth 8 over TCP, 3 s
// runs, two rounds): 2.5k IOPS at 374-394 us of server CPU per write and 11-18 page faults per
// write with the defaults; 3.1-3.3k IOPS at 303-309 us and no page fault with these settings.
// Setting only the trim threshold is far worse (260 faults per write): any tunable turns off
// glibc's dynamic mmap threshold, and every slab is then mapped and unmapped on its own.
//
// The price is memory kept after a burst: up to mallocTrimThresholdBytes of free heap stays with
// the process instead of going back to the kernel. Other C libraries ignore the variable, and an
// operator's own GLIBC_TUNABLES is left as it is.

/** Blocks up to this size come from the heap, not a mapping of their own (a slab is 256 KiB). */
export const mallocMmapThresholdBytes = 1024 * 1024;
/** Free memory at the top of the heap kept for reuse before any is given back to the kernel. */
export const mallocTrimThresholdBytes = 32 * 1024 * 1024;

/** The GLIBC_TUNABLES value that sets both thresholds. */
export const serverMallocTunables =
  `glibc.malloc.mmap_threshold=${mallocMmapThresholdBytes}:` +
  `glibc.malloc.trim_threshold=${mallocTrimThresholdBytes}`;

/**
 * The environment for a child that serves block payloads: `base` with GLIBC_TUNABLES set to
 * serverMallocTunables, unless `base` sets GLIBC_TUNABLES already (the operator's choice wins).
 */
export function serverProcessEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (base.GLIBC_TUNABLES !== undefined) return { ...base };
  return { ...base, GLIBC_TUNABLES: serverMallocTunables };
}
