// Option haggling of the fixed newstyle handshake as a pure function: (state, option, data) ->
// replies and what happens next. The connection owns the socket and the timer; this file owns
// what each option means, so the unit tests can walk every branch without a socket.
import {
  type NbdExportCatalog,
  type Session,
  preferredBlockBytes,
  resolveExport,
  sessionFor,
} from './exports.js';
import { type NbdCloseCode, NbdProtocolError } from './errors.js';
import type { NbdLimits } from './limits.js';
import {
  decodeInfoRequest,
  decodeMetaContextRequest,
  encodeExportNameReply,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContext,
  encodeOptionError,
  encodeOptionReply,
  encodeServerEntry,
} from './option-codec.js';
import * as P from './protocol.js';

export interface HandshakeState {
  noZeroes: boolean;
  structuredReplies: boolean;
  /** The export the last SET_META_CONTEXT selected base:allocation for, if it did. */
  metaContextExport: string | undefined;
  options: number;
  shuttingDown: boolean;
}

export interface HandshakeContext {
  readonly catalog: NbdExportCatalog;
  readonly limits: NbdLimits;
}

export type OptionOutcome =
  | { kind: 'continue'; replies: Buffer[] }
  | { kind: 'transmission'; replies: Buffer[]; session: Session }
  | { kind: 'abort'; replies: Buffer[] }
  | { kind: 'close'; error: NbdProtocolError };

export function initialHandshakeState(noZeroes: boolean): HandshakeState {
  return {
    noZeroes,
    structuredReplies: false,
    metaContextExport: undefined,
    options: 0,
    shuttingDown: false,
  };
}

function answerInfo(
  option: number,
  data: Buffer,
  state: HandshakeState,
  context: HandshakeContext,
): OptionOutcome {
  const request = decodeInfoRequest(data);
  if (!request.ok) {
    return reply(option, P.NBD_REP_ERR_INVALID, request.reason);
  }
  const { name, infos } = request.value;
  const found = resolveExport(context.catalog, name);
  if (found === undefined) {
    return reply(option, P.NBD_REP_ERR_UNKNOWN, `no export named ${JSON.stringify(name)}`);
  }
  const session = sessionFor(name, found, state);
  const replies = [
    encodeOptionReply(
      option,
      P.NBD_REP_INFO,
      encodeInfoExport(session.sizeBytes, session.transmissionFlags),
    ),
  ];
  if (infos.includes(P.NBD_INFO_NAME)) {
    replies.push(
      encodeOptionReply(option, P.NBD_REP_INFO, encodeInfoString(P.NBD_INFO_NAME, name)),
    );
  }
  if (infos.includes(P.NBD_INFO_DESCRIPTION) && found.description !== undefined) {
    const payload = encodeInfoString(P.NBD_INFO_DESCRIPTION, found.description);
    replies.push(encodeOptionReply(option, P.NBD_REP_INFO, payload));
  }
  // Sent unasked too: the maximum is below the specification's default of "unlimited".
  const max = context.limits.requestBytesMax;
  const sizes = encodeInfoBlockSize(1, preferredBlockBytes(found.device, max), max);
  replies.push(encodeOptionReply(option, P.NBD_REP_INFO, sizes));
  replies.push(encodeOptionReply(option, P.NBD_REP_ACK));
  if (option === P.NBD_OPT_GO) return { kind: 'transmission', replies, session };
  return { kind: 'continue', replies };
}

function answerMetaContext(
  option: number,
  data: Buffer,
  state: HandshakeState,
  context: HandshakeContext,
): OptionOutcome {
  const setting = option === P.NBD_OPT_SET_META_CONTEXT;
  // SET replaces the selection even when it fails (the specification says so).
  if (setting) state.metaContextExport = undefined;
  const fail = (type: number, message: string): OptionOutcome => ({
    kind: 'continue',
    replies: [encodeOptionError(option, type, message)],
  });
  if (!state.structuredReplies)
    return fail(P.NBD_REP_ERR_INVALID, 'negotiate structured replies first');
  const request = decodeMetaContextRequest(data, context.limits.metaContextQueriesMax);
  if (!request.ok)
    return fail(request.tooBig ? P.NBD_REP_ERR_TOO_BIG : P.NBD_REP_ERR_INVALID, request.reason);
  const { name, queries } = request.value;
  if (resolveExport(context.catalog, name) === undefined) {
    return fail(P.NBD_REP_ERR_UNKNOWN, `no export named ${JSON.stringify(name)}`);
  }
  // "base:" lists every base context; an empty query list lists everything (LIST only).
  const matches = queries.some((query) =>
    setting ? query === P.BASE_ALLOCATION : query === P.BASE_ALLOCATION || query === 'base:',
  );
  const selected = setting ? matches : matches || queries.length === 0;
  const replies: Buffer[] = [];
  if (selected) {
    const id = setting ? P.BASE_ALLOCATION_CONTEXT_ID : 0;
    replies.push(
      encodeOptionReply(option, P.NBD_REP_META_CONTEXT, encodeMetaContext(id, P.BASE_ALLOCATION)),
    );
    if (setting) state.metaContextExport = name;
  }
  replies.push(encodeOptionReply(option, P.NBD_REP_ACK));
  return { kind: 'continue', replies };
}

/**
 * Answers one option. `data` is undefined when the option was longer than optionBytesMax and its
 * bytes were skipped unread. Mutates `state` (structured replies, meta context selection, counts).
 */
export function answerOption(
  option: number,
  data: Buffer | undefined,
  state: HandshakeState,
  context: HandshakeContext,
): OptionOutcome {
  state.options++;
  if (state.options > context.limits.handshakeOptionsMax) {
    const message = `more than ${context.limits.handshakeOptionsMax} options in one handshake`;
    return closeWith('CONTINUUM_ERR_NBD_TOO_MANY_OPTIONS', message);
  }
  if (option === P.NBD_OPT_ABORT) {
    return { kind: 'abort', replies: [encodeOptionReply(option, P.NBD_REP_ACK)] };
  }
  if (data === undefined) {
    if (option === P.NBD_OPT_EXPORT_NAME) {
      return closeWith('CONTINUUM_ERR_NBD_UNKNOWN_EXPORT', 'NBD_OPT_EXPORT_NAME name too long');
    }
    return reply(
      option,
      P.NBD_REP_ERR_TOO_BIG,
      `option ${option}: more data than this server reads`,
    );
  }
  if (state.shuttingDown) {
    if (option === P.NBD_OPT_EXPORT_NAME) {
      return closeWith('CONTINUUM_ERR_NBD_SHUTDOWN', 'server shutting down');
    }
    return reply(option, P.NBD_REP_ERR_SHUTDOWN, 'server shutting down');
  }
  switch (option) {
    case P.NBD_OPT_EXPORT_NAME:
      return answerExportName(data, state, context.catalog);
    case P.NBD_OPT_LIST:
      return answerList(data, context.catalog);
    case P.NBD_OPT_STRUCTURED_REPLY:
      if (data.length !== 0) {
        return reply(option, P.NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
      }
      state.structuredReplies = true;
      return reply(option, P.NBD_REP_ACK);
    case P.NBD_OPT_INFO:
    case P.NBD_OPT_GO:
      return answerInfo(option, data, state, context);
    case P.NBD_OPT_LIST_META_CONTEXT:
    case P.NBD_OPT_SET_META_CONTEXT:
      return answerMetaContext(option, data, state, context);
    case P.NBD_OPT_STARTTLS:
      return reply(option, P.NBD_REP_ERR_UNSUP, 'TLS is not supported by this server');
    default:
      return reply(option, P.NBD_REP_ERR_UNSUP, `option ${option} is not supported`);
  }
}

function reply(option: number, type: number, message?: string): OptionOutcome {
  const bytes =
    message === undefined
      ? encodeOptionReply(option, type)
      : encodeOptionError(option, type, message);
  return { kind: 'continue', replies: [bytes] };
}

function closeWith(code: NbdCloseCode, message: string): OptionOutcome {
  return { kind: 'close', error: new NbdProtocolError(code, message) };
}

function answerList(data: Buffer, catalog: NbdExportCatalog): OptionOutcome {
  const option = P.NBD_OPT_LIST;
  if (data.length !== 0) return reply(option, P.NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
  if (catalog.listExports === undefined) {
    return reply(option, P.NBD_REP_ERR_POLICY, 'this server does not list its exports');
  }
  const replies = catalog.listExports().map((entry) => {
    const payload = encodeServerEntry(entry.name, entry.description);
    return encodeOptionReply(option, P.NBD_REP_SERVER, payload);
  });
  replies.push(encodeOptionReply(option, P.NBD_REP_ACK));
  return { kind: 'continue', replies };
}

function answerExportName(
  data: Buffer,
  state: HandshakeState,
  catalog: NbdExportCatalog,
): OptionOutcome {
  const name = data.toString('utf8');
  const found = resolveExport(catalog, name);
  if (found === undefined) {
    const message = `NBD_OPT_EXPORT_NAME: no export named ${JSON.stringify(name)}`;
    return {
      kind: 'close',
      error: new NbdProtocolError('CONTINUUM_ERR_NBD_UNKNOWN_EXPORT', message),
    };
  }
  const session = sessionFor(name, found, state);
  const reply = encodeExportNameReply(session.sizeBytes, session.transmissionFlags, state.noZeroes);
  return { kind: 'transmission', replies: [reply], session };
}
