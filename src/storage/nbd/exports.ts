// The exports an NBD server offers: the catalog the volume server plugs in, and the session the
// handshake hands to the transmission phase (size, flags, negotiated features) for one export.
import type { BlockDevice } from '../block-device.js';
import * as P from './protocol.js';

/** An export with what the server says about it; a bare BlockDevice is served as it is. */
export interface NbdExport {
  readonly device: BlockDevice;
  /** Shown by NBD_INFO_DESCRIPTION (nbdinfo prints it). */
  readonly description?: string;
  /** Serve read-only even though the device accepts writes (a golden image, a drill clone). */
  readonly readOnly?: boolean;
}

export interface NbdExportListing {
  readonly name: string;
  readonly description?: string;
}

/** Where the server finds exports: the volume server plugs its engine in here. */
export interface NbdExportCatalog {
  /** Called for every INFO, GO, EXPORT_NAME and meta context option; keep it cheap. */
  readonly lookupExport: (name: string) => BlockDevice | NbdExport | undefined;
  /** For NBD_OPT_LIST; without it the list is refused with NBD_REP_ERR_POLICY. */
  readonly listExports?: () => readonly NbdExportListing[];
}

/** What the transmission phase needs to know about the export and the negotiated features. */
export interface Session {
  readonly exportName: string;
  readonly device: BlockDevice;
  readonly readOnly: boolean;
  readonly sizeBytes: number;
  readonly structuredReplies: boolean;
  /** base:allocation was selected for this export, so NBD_CMD_BLOCK_STATUS is allowed. */
  readonly blockStatus: boolean;
  readonly transmissionFlags: number;
}

export function resolveExport(catalog: NbdExportCatalog, name: string): NbdExport | undefined {
  const found = catalog.lookupExport(name);
  if (found === undefined) return undefined;
  return 'device' in found ? found : { device: found };
}

/** What was negotiated before the export was chosen. */
export interface Negotiated {
  readonly structuredReplies: boolean;
  /** The export the last SET_META_CONTEXT selected base:allocation for, if it did. */
  readonly metaContextExport: string | undefined;
}

export function sessionFor(name: string, found: NbdExport, state: Negotiated): Session {
  const { device } = found;
  const readOnly = device.readOnly || found.readOnly === true;
  let flags = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_SEND_FUA;
  flags |= readOnly ? P.NBD_FLAG_READ_ONLY : P.NBD_FLAG_SEND_TRIM | P.NBD_FLAG_SEND_WRITE_ZEROES;
  // A read is always answered with one content chunk, so "don't fragment" costs nothing.
  if (state.structuredReplies) flags |= P.NBD_FLAG_SEND_DF;
  if (device.consistentAcrossConnections) flags |= P.NBD_FLAG_CAN_MULTI_CONN;
  return {
    exportName: name,
    device,
    readOnly,
    sizeBytes: device.sizeBytes,
    structuredReplies: state.structuredReplies,
    blockStatus: state.structuredReplies && state.metaContextExport === name,
    transmissionFlags: flags,
  };
}

/** Preferred block size: the device's block if it is a power of two of at least 512, else 4 KiB. */
export function preferredBlockBytes(device: BlockDevice, requestBytesMax: number): number {
  const block = device.blockSizeBytes;
  const isPowerOfTwo = Number.isInteger(block) && block > 0 && (block & (block - 1)) === 0;
  return Math.min(isPowerOfTwo ? Math.max(512, block) : 4096, requestBytesMax);
}
