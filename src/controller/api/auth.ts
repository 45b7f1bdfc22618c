// Bearer-token checks for the API and agent sessions, in constant time.
import { timingSafeEqual, createHash } from 'node:crypto';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export function tokenMatches(header: string | undefined | null, token: string): boolean {
  if (header === undefined || header === null) return false;
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (match === null) return false;
  return timingSafeEqual(digest(match[1]!), digest(token));
}
