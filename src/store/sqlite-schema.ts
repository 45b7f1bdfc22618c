// The SQLite backend's schema and connection settings. Kept apart from sqlite.ts so the layout
// of the file on disk can be read in one place. PRAGMA user_version records the schema version.
import type { Database } from 'better-sqlite3';
import { ContinuumError } from '../core/errors.js';

const schemaVersion = 1;

const schema = `
  CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) STRICT;
  INSERT OR IGNORE INTO meta (name, value) VALUES
    ('revision', 0), ('seq', 0), ('leases_granted', 0), ('compacted_revision', 0);
  CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    mod_revision INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease TEXT
  ) STRICT;
  CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease IS NOT NULL;
  CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    json TEXT NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS journal_subject ON journal (subject_kind, subject_name, seq);
  CREATE TABLE IF NOT EXISTS history (
    revision INTEGER PRIMARY KEY,
    json TEXT NOT NULL
  ) STRICT;
  CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    ttl_ms INTEGER NOT NULL,
    expires_at REAL NOT NULL
  ) STRICT;
`;

/**
 * WAL lets readers proceed beside the writer; synchronous=FULL makes every commit durable before
 * txn() resolves, because a decision the controller acted on must survive a crash of the host.
 */
export function prepareDatabase(db: Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > schemaVersion) {
    throw new ContinuumError(
      'CONTINUUM_ERR_CONFIG',
      `store schema version ${version} is newer than this build's (${schemaVersion})`,
    );
  }
  db.exec(schema);
  db.pragma(`user_version = ${schemaVersion}`);
}
