// Tests of the SSE line parser: events survive any split into chunks, comments are skipped, and
// the size limit holds.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SseParser, type SseEvent } from './sse-parser.js';

const stream =
  ': keep-alive\n\n' +
  'event: routes\ndata: {"revision":1,"routes":[]}\n\n' +
  'event: routes\r\ndata: {"revision":2,\r\ndata: "routes":[]}\r\n\r\n' +
  'data:no space\rid: 7\r\r' +
  'event: empty\n\n' +
  ': keep-alive\n\n';

const expected: SseEvent[] = [
  { event: 'routes', data: '{"revision":1,"routes":[]}' },
  { event: 'routes', data: '{"revision":2,\n"routes":[]}' },
  { event: 'message', data: 'no space' },
];

function parseInChunks(text: string, cuts: number[]): SseEvent[] {
  const parser = new SseParser(1024);
  const positions = [...new Set(cuts)].sort((a, b) => a - b);
  const events: SseEvent[] = [];
  let from = 0;
  for (const at of [...positions, text.length]) {
    events.push(...parser.push(text.slice(from, at)));
    from = at;
  }
  return events;
}

describe('SseParser', () => {
  it('parses events, joins data lines, accepts LF, CRLF and CR, and skips comments', () => {
    assert.deepEqual(parseInChunks(stream, []), expected);
  });

  it('gives the same events however the stream is split into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 12 }),
        (cuts) => {
          assert.deepEqual(parseInChunks(stream, cuts), expected);
        },
      ),
    );
  });

  it('keeps an unfinished event until its blank line arrives', () => {
    const parser = new SseParser(1024);
    assert.deepEqual(parser.push('event: routes\ndata: {}\n'), []);
    assert.deepEqual(parser.push('\n'), [{ event: 'routes', data: '{}' }]);
  });

  it('throws RangeError for an event longer than eventCharsMax, split or not', () => {
    assert.throws(() => new SseParser(16).push(`data: ${'x'.repeat(20)}\n`), RangeError);
    const parser = new SseParser(16);
    parser.push('data: xxxxxxxx');
    assert.throws(() => parser.push('xxxxxxxxxx'), RangeError);
  });
});
