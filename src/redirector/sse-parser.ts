// A small parser for the Server-Sent Events wire format (the HTML standard's "event stream"):
// lines end in LF (CRLF and CR are accepted too), a blank line ends an event, and lines starting
// with ':' are comments the controller sends as keep-alives. Chunks may split lines, and even
// UTF-8 characters, anywhere; the caller feeds decoded text and gets whole events back.

export interface SseEvent {
  /** The `event:` field, or "message" when the event has none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
}

export class SseParser {
  private readonly eventCharsMax: number;
  private buffer = '';
  /** A CR ended the last chunk: a LF at the start of the next one belongs to it. */
  private skipLineFeed = false;
  private eventName = '';
  private dataLines: string[] = [];
  private eventChars = 0;

  /** @param eventCharsMax the longest event (and line) accepted; a longer one throws RangeError. */
  constructor(eventCharsMax: number) {
    this.eventCharsMax = eventCharsMax;
  }

  /** Feeds decoded text; returns the events it completed, in order. */
  push(text: string): SseEvent[] {
    let input = text;
    if (this.skipLineFeed && input.startsWith('\n')) input = input.slice(1);
    // A CR at the end may be the first half of a CRLF split across chunks.
    this.skipLineFeed = input.endsWith('\r');
    if (!/[\r\n]/.test(input)) {
      // No line ends here: only append, so a long line split into many chunks is not rescanned.
      this.buffer += input;
      this.checkLength(this.buffer.length);
      return [];
    }
    const lines = (this.buffer + input).split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? '';
    const events: SseEvent[] = [];
    for (const line of lines) {
      const event = this.takeLine(line);
      if (event !== null) events.push(event);
    }
    this.checkLength(this.buffer.length);
    return events;
  }

  private takeLine(line: string): SseEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    this.eventChars += line.length;
    this.checkLength(0);
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.eventName = value;
    else if (field === 'data') this.dataLines.push(value);
    // `id` and `retry` are not used: the client resumes by asking for the whole table again.
    return null;
  }

  private checkLength(unfinishedLineChars: number): void {
    if (this.eventChars + unfinishedLineChars > this.eventCharsMax) {
      throw new RangeError(`an event longer than eventCharsMax (${this.eventCharsMax})`);
    }
  }

  /** A blank line: an event with data is complete; one without data is dropped, as the standard says. */
  private dispatch(): SseEvent | null {
    const event =
      this.dataLines.length === 0
        ? null
        : {
            event: this.eventName === '' ? 'message' : this.eventName,
            data: this.dataLines.join('\n'),
          };
    this.eventName = '';
    this.dataLines = [];
    this.eventChars = 0;
    return event;
  }
}
