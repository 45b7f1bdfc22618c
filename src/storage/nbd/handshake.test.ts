// Option haggling without a socket: every option's replies, what it changes in the state, and
// when the handshake moves to transmission, aborts or has to close the connection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NbdExportCatalog } from './exports.js';
import {
  answerOption,
  type HandshakeContext,
  initialHandshakeState,
  type OptionOutcome,
} from './handshake.js';
import { resolveNbdLimits } from './limits.js';
import { MemoryBlockDevice } from './memory-device.js';
import * as P from './protocol.js';

const disk = new MemoryBlockDevice({ sizeBytes: 1 << 20, blockSizeBytes: 65536 });
const frozen = new MemoryBlockDevice({
  sizeBytes: 1 << 16,
  readOnly: true,
  consistentAcrossConnections: false,
});
const catalog: NbdExportCatalog = {
  lookupExport: (name) =>
    name === 'disk'
      ? { device: disk, description: 'the disk' }
      : name === 'frozen'
        ? frozen
        : undefined,
  listExports: () => [{ name: 'disk', description: 'the disk' }, { name: 'frozen' }],
};
const context: HandshakeContext = {
  catalog,
  limits: resolveNbdLimits({ handshakeOptionsMax: 20 }),
};

interface Reply {
  option: number;
  type: number;
  data: Buffer;
}

function replies(outcome: OptionOutcome): Reply[] {
  assert.ok(
    outcome.kind !== 'close',
    `unexpected close: ${outcome.kind === 'close' ? outcome.error.message : ''}`,
  );
  return outcome.replies.map((bytes) => {
    assert.equal(bytes.readUInt32BE(0), P.NBD_REP_MAGIC_HIGH);
    assert.equal(bytes.readUInt32BE(4), P.NBD_REP_MAGIC_LOW);
    const length = bytes.readUInt32BE(16);
    assert.equal(bytes.length, 20 + length);
    return {
      option: bytes.readUInt32BE(8),
      type: bytes.readUInt32BE(12),
      data: bytes.subarray(20),
    };
  });
}

function goData(name: string, infos: number[] = []): Buffer {
  const data = Buffer.alloc(6 + name.length + 2 * infos.length);
  data.writeUInt32BE(name.length, 0);
  data.write(name, 4);
  data.writeUInt16BE(infos.length, 4 + name.length);
  infos.forEach((info, i) => data.writeUInt16BE(info, 6 + name.length + 2 * i));
  return data;
}

function metaData(name: string, queries: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(name.length, 0);
  parts[2]!.writeUInt32BE(queries.length, 0);
  for (const query of queries) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(query.length, 0);
    parts.push(length, Buffer.from(query));
  }
  return Buffer.concat(parts);
}

describe('handshake options', () => {
  it('lists every export with its description, then ACK', () => {
    const state = initialHandshakeState(true);
    const list = replies(answerOption(P.NBD_OPT_LIST, Buffer.alloc(0), state, context));
    assert.deepEqual(
      list.map((r) => r.type),
      [P.NBD_REP_SERVER, P.NBD_REP_SERVER, P.NBD_REP_ACK],
    );
    assert.equal(list[0]!.data.readUInt32BE(0), 4);
    assert.equal(list[0]!.data.subarray(4).toString(), 'diskthe disk');
    const withData = replies(answerOption(P.NBD_OPT_LIST, Buffer.alloc(1), state, context));
    assert.equal(withData[0]!.type, P.NBD_REP_ERR_INVALID);
  });

  it('refuses to list when the catalog has no list', () => {
    const quiet: HandshakeContext = { ...context, catalog: { lookupExport: catalog.lookupExport } };
    const list = replies(
      answerOption(P.NBD_OPT_LIST, Buffer.alloc(0), initialHandshakeState(false), quiet),
    );
    assert.equal(list[0]!.type, P.NBD_REP_ERR_POLICY);
  });

  it('answers INFO with export, name, description and block sizes, and stays in the handshake', () => {
    const state = initialHandshakeState(false);
    const outcome = answerOption(
      P.NBD_OPT_INFO,
      goData('disk', [P.NBD_INFO_NAME, P.NBD_INFO_DESCRIPTION]),
      state,
      context,
    );
    assert.equal(outcome.kind, 'continue');
    const info = replies(outcome);
    assert.equal(info.at(-1)!.type, P.NBD_REP_ACK);
    const byInfo = new Map(info.slice(0, -1).map((r) => [r.data.readUInt16BE(0), r.data]));
    const exportInfo = byInfo.get(P.NBD_INFO_EXPORT)!;
    assert.equal(exportInfo.readUInt32BE(6), 1 << 20);
    const flags = exportInfo.readUInt16BE(10);
    assert.ok(
      flags & P.NBD_FLAG_CAN_MULTI_CONN &&
        flags & P.NBD_FLAG_SEND_TRIM &&
        flags & P.NBD_FLAG_SEND_FUA,
    );
    assert.equal(flags & P.NBD_FLAG_SEND_DF, 0, 'DF only with structured replies');
    assert.equal(byInfo.get(P.NBD_INFO_NAME)!.subarray(2).toString(), 'disk');
    assert.equal(byInfo.get(P.NBD_INFO_DESCRIPTION)!.subarray(2).toString(), 'the disk');
    const sizes = byInfo.get(P.NBD_INFO_BLOCK_SIZE)!;
    assert.deepEqual(
      [sizes.readUInt32BE(2), sizes.readUInt32BE(6), sizes.readUInt32BE(10)],
      [1, 65536, 32 << 20],
    );
  });

  it('moves to transmission on GO, with the read-only and multi-conn flags of the export', () => {
    const outcome = answerOption(
      P.NBD_OPT_GO,
      goData('frozen'),
      initialHandshakeState(false),
      context,
    );
    assert.equal(outcome.kind, 'transmission');
    if (outcome.kind !== 'transmission') return;
    assert.equal(outcome.session.readOnly, true);
    const flags = outcome.session.transmissionFlags;
    assert.ok(flags & P.NBD_FLAG_READ_ONLY);
    assert.equal(
      flags & (P.NBD_FLAG_CAN_MULTI_CONN | P.NBD_FLAG_SEND_TRIM | P.NBD_FLAG_SEND_WRITE_ZEROES),
      0,
    );
  });

  it('answers an unknown export with ERR_UNKNOWN on GO, but must close on EXPORT_NAME', () => {
    const state = initialHandshakeState(false);
    assert.equal(
      replies(answerOption(P.NBD_OPT_GO, goData('nope'), state, context))[0]!.type,
      P.NBD_REP_ERR_UNKNOWN,
    );
    const outcome = answerOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('nope'), state, context);
    assert.equal(outcome.kind, 'close');
    assert.equal(
      outcome.kind === 'close' && outcome.error.code,
      'CONTINUUM_ERR_NBD_UNKNOWN_EXPORT',
    );
  });

  it('replies to EXPORT_NAME with size and flags, zeroes only when not declined', () => {
    for (const noZeroes of [false, true]) {
      const outcome = answerOption(
        P.NBD_OPT_EXPORT_NAME,
        Buffer.from('disk'),
        initialHandshakeState(noZeroes),
        context,
      );
      assert.equal(outcome.kind, 'transmission');
      assert.equal(
        outcome.kind === 'transmission' && outcome.replies[0]!.length,
        noZeroes ? 10 : 134,
      );
    }
  });

  it('selects base:allocation only after structured replies, and only for the export it named', () => {
    const state = initialHandshakeState(false);
    const early = replies(
      answerOption(
        P.NBD_OPT_SET_META_CONTEXT,
        metaData('disk', [P.BASE_ALLOCATION]),
        state,
        context,
      ),
    );
    assert.equal(early[0]!.type, P.NBD_REP_ERR_INVALID);
    assert.equal(
      replies(answerOption(P.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0), state, context))[0]!.type,
      P.NBD_REP_ACK,
    );
    const set = replies(
      answerOption(
        P.NBD_OPT_SET_META_CONTEXT,
        metaData('disk', ['qemu:x', P.BASE_ALLOCATION]),
        state,
        context,
      ),
    );
    assert.deepEqual(
      set.map((r) => r.type),
      [P.NBD_REP_META_CONTEXT, P.NBD_REP_ACK],
    );
    assert.equal(set[0]!.data.readUInt32BE(0), P.BASE_ALLOCATION_CONTEXT_ID);
    assert.equal(set[0]!.data.subarray(4).toString(), P.BASE_ALLOCATION);
    const other = answerOption(P.NBD_OPT_GO, goData('frozen'), { ...state }, context);
    assert.equal(other.kind === 'transmission' && other.session.blockStatus, false);
    const same = answerOption(P.NBD_OPT_GO, goData('disk'), state, context);
    assert.equal(same.kind === 'transmission' && same.session.blockStatus, true);
    assert.ok(same.kind === 'transmission' && same.session.transmissionFlags & P.NBD_FLAG_SEND_DF);
  });

  it('clears the selection when a later SET_META_CONTEXT fails or selects nothing', () => {
    const state = initialHandshakeState(false);
    answerOption(P.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0), state, context);
    answerOption(P.NBD_OPT_SET_META_CONTEXT, metaData('disk', [P.BASE_ALLOCATION]), state, context);
    assert.equal(state.metaContextExport, 'disk');
    const none = replies(
      answerOption(P.NBD_OPT_SET_META_CONTEXT, metaData('disk', ['base:']), state, context),
    );
    assert.deepEqual(
      none.map((r) => r.type),
      [P.NBD_REP_ACK],
    );
    assert.equal(state.metaContextExport, undefined);
  });

  it('lists base:allocation for no query and for "base:", and errors on unknown exports', () => {
    const state = initialHandshakeState(false);
    answerOption(P.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0), state, context);
    for (const queries of [[], ['base:']]) {
      const listed = replies(
        answerOption(P.NBD_OPT_LIST_META_CONTEXT, metaData('disk', queries), state, context),
      );
      assert.deepEqual(
        listed.map((r) => r.type),
        [P.NBD_REP_META_CONTEXT, P.NBD_REP_ACK],
      );
      assert.equal(listed[0]!.data.readUInt32BE(0), 0);
    }
    const unknown = replies(
      answerOption(P.NBD_OPT_LIST_META_CONTEXT, metaData('nope', []), state, context),
    );
    assert.equal(unknown[0]!.type, P.NBD_REP_ERR_UNKNOWN);
    const tooMany = metaData(
      'disk',
      Array.from({ length: 17 }, () => 'x:'),
    );
    assert.equal(
      replies(answerOption(P.NBD_OPT_LIST_META_CONTEXT, tooMany, state, context))[0]!.type,
      P.NBD_REP_ERR_TOO_BIG,
    );
  });

  it('refuses TLS and unknown options, and answers skipped oversized options with TOO_BIG', () => {
    const state = initialHandshakeState(false);
    assert.equal(
      replies(answerOption(P.NBD_OPT_STARTTLS, Buffer.alloc(0), state, context))[0]!.type,
      P.NBD_REP_ERR_UNSUP,
    );
    const unknown = replies(answerOption(0x7fff, Buffer.alloc(3), state, context))[0]!;
    assert.equal(unknown.type, P.NBD_REP_ERR_UNSUP);
    assert.equal(unknown.option, 0x7fff);
    assert.equal(
      replies(answerOption(P.NBD_OPT_GO, undefined, state, context))[0]!.type,
      P.NBD_REP_ERR_TOO_BIG,
    );
    assert.equal(answerOption(P.NBD_OPT_EXPORT_NAME, undefined, state, context).kind, 'close');
  });

  it('acknowledges ABORT, even while shutting down; other options then get ERR_SHUTDOWN', () => {
    const state = initialHandshakeState(false);
    state.shuttingDown = true;
    assert.equal(
      replies(answerOption(P.NBD_OPT_GO, goData('disk'), state, context))[0]!.type,
      P.NBD_REP_ERR_SHUTDOWN,
    );
    const abort = answerOption(P.NBD_OPT_ABORT, Buffer.alloc(0), state, context);
    assert.equal(abort.kind, 'abort');
    assert.equal(replies(abort)[0]!.type, P.NBD_REP_ACK);
  });

  it('closes the connection after handshakeOptionsMax options', () => {
    const state = initialHandshakeState(false);
    let outcome: OptionOutcome | undefined;
    for (let i = 0; i < 21; i++) outcome = answerOption(0x1234, Buffer.alloc(0), state, context);
    assert.equal(
      outcome?.kind === 'close' && outcome.error.code,
      'CONTINUUM_ERR_NBD_TOO_MANY_OPTIONS',
    );
  });
});
