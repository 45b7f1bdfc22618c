// A small server-sent events parser over a fetch body. EventSource cannot send the Authorization
// header the API requires, and putting the token in the URL would leak it into logs and history,
// so the console reads /v1/events/stream with fetch and parses the stream itself (WHATWG HTML
// "event stream interpretation", the subset the controller writes: event, id, data, comments).

export interface SseMessage {
  event: string;
  id?: string;
  data: string;
}

/** A line longer than this means the stream is not what we expect; the reader gives up. */
export const sseLineCharsMax = 1_000_000;

export class SseParser {
  private buffer = '';
  private event = '';
  private id: string | undefined;
  private data: string[] = [];

  /** Feeds a chunk of text; returns every message it completed. */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const messages: SseMessage[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      const message = this.line(line);
      if (message !== undefined) messages.push(message);
    }
    if (this.buffer.length > sseLineCharsMax)
      throw new RangeError(`an event stream line longer than ${sseLineCharsMax} characters`);
    return messages;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      // A blank line dispatches what was gathered; a block of comments alone dispatches nothing.
      const message =
        this.data.length === 0
          ? undefined
          : {
              event: this.event || 'message',
              ...(this.id === undefined ? {} : { id: this.id }),
              data: this.data.join('\n'),
            };
      this.event = '';
      this.data = [];
      return message;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    return undefined;
  }
}
