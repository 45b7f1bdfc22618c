// How the block engine reports failure. Store operations (create, snapshot, import...) throw a
// coded ContinuumError; block I/O throws BlockDeviceError with a kind that the NBD server maps to
// a protocol error. Both say what failed and where: volume, layer, block.
import { ContinuumError, type ErrorCode } from '../../core/errors.js';
import { BlockDeviceError } from '../block-device.js';

export function volumeError(code: ErrorCode, message: string, cause?: unknown): ContinuumError {
  return new ContinuumError(code, message, cause === undefined ? {} : { cause });
}

export function notFound(what: string, name: string): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_VOLUME_NOT_FOUND', `${what} ${name} does not exist`);
}

export function alreadyExists(what: string, name: string): ContinuumError {
  return new ContinuumError('CONTINUUM_ERR_VOLUME_EXISTS', `${what} ${name} already exists`);
}

/** Turns a failed system call into the kind of block error a server can report. */
export function ioFailure(what: string, cause: unknown): BlockDeviceError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BlockDeviceError('no-space', `${what}: the file system is full`, { cause });
  }
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new BlockDeviceError('io', `${what}: ${detail}`, { cause });
}

export function corruptBlock(where: string, blockIndex: number, detail: string): BlockDeviceError {
  return new BlockDeviceError('corrupt', `${where} block ${blockIndex}: ${detail}`);
}

/** Store operations that fail on a block error carry the block error as the cause. */
export function fromBlockError(what: string, error: unknown): ContinuumError {
  if (error instanceof ContinuumError) return error;
  if (error instanceof BlockDeviceError) {
    const code: ErrorCode =
      error.kind === 'corrupt' ? 'CONTINUUM_ERR_VOLUME_CORRUPT' : 'CONTINUUM_ERR_VOLUME_IO';
    return new ContinuumError(code, `${what}: ${error.message}`, { cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new ContinuumError('CONTINUUM_ERR_VOLUME_IO', `${what}: ${detail}`, { cause: error });
}
